"""Whose portal is open: a login may open its own record (as the patient) and those of the patients
it acts for (as their representative, with a level of access). The open record is remembered in the
session and checked again on every request against the accesses in force, so a revoked, ended or
run-out access stops working on the next page, open sessions included. Each time a representative
opens a patient's portal it goes into the audit trail.

What each level shows is decided here, once (`SECTIONS`), and every portal page asks the open
record (`Record.shows`).
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from invitations import representatives
from invitations.representatives import Record
from patients.models.representatives import AccessLevel

SESSION_KEY = "portal_record"

#: What a representative sees at each level of access (the patient sees all of their own portal):
#: full access is the patient's own view; limited access (a teenager's parents, by default) shows
#: who the patient is and how to reach the practice, not the patient's contact details or settings.
SECTIONS = {
    AccessLevel.FULL: {"name", "date_of_birth", "contact_details", "email_preferences", "practice"},
    AccessLevel.LIMITED: {"name", "practice"},
}


def shows(record: Record, section: str) -> bool:
    return record.is_own or section in SECTIONS[record.level]


def open_record(request: HttpRequest):
    """The record this request opens (None: the login opens none), and `request.portal_records`,
    every record the login may open now."""
    now = timezone.now()
    available = representatives.records_of(request.user, now=now)
    request.portal_records = available
    wanted = request.session.get(SESSION_KEY)
    record = next((r for r in available if r.patient.pk == wanted), available[0] if available else None)
    if record is not None and record.patient.pk != wanted:
        _open(request, record, now=now)
    return record


def _open(request: HttpRequest, record: Record, *, now) -> None:
    request.session[SESSION_KEY] = record.patient.pk
    representatives.record_visit(record, request.user, now=now)


def open_patient(request: HttpRequest, patient_id: int) -> bool:
    """Open `patient_id`'s portal if the login may (after registering from a representative's link)."""
    record = next((r for r in representatives.records_of(request.user, now=timezone.now()) if r.patient.pk == patient_id), None)
    if record is None:
        return False
    _open(request, record, now=timezone.now())
    return True


@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    """The switcher: open another record of this login's (another patient's id is a 404)."""
    if not request.user.is_authenticated:
        return redirect("portal:login")
    try:
        patient_id = int(request.POST.get("patient", ""))
    except ValueError as error:
        raise Http404("No such record.") from error
    if not open_patient(request, patient_id):
        raise Http404("No such record.")
    return redirect("portal:home")


def context(request: HttpRequest) -> dict:
    """The switcher and the role line in the portal's header (pages that opened a record)."""
    record = getattr(request, "record", None)
    if record is None:
        return {}
    return {"record": record, "portal_records": getattr(request, "portal_records", [record])}
