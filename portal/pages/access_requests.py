"""A patient asking for portal access on the practice's public page (when self sign-up is on):
matched to a chart and invited, or a new chart flagged "self sign-up, unverified", by a worker. The
page does the same work and answers the same whatever the request holds, so it never tells who is
a patient."""

import datetime
import logging
import secrets

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from core import languages, throttle
from core.queue import enqueue_on_commit
from patients.models import Patient, Practice, normalise_email

from invitations.models import Source
from invitations.services import invite, normalise_name
from portal.forms import AccessRequestForm
from portal.guards import no_referrer

logger = logging.getLogger(__name__)

ACCESS_REQUEST_LIMIT = (5, 60 * 60)  # per client address per hour
ACCESS_REQUEST_EMAIL_LIMIT = (3, 24 * 60 * 60)  # per practice and address per day
HANDLE_TASK = "portal.handle_access_request"


def _find_requesting_patient(practice: Practice, *, first_name: str, last_name: str, date_of_birth, email: str):
    candidates = [
        p
        for p in Patient.objects.filter(practice=practice, date_of_birth=date_of_birth, email=normalise_email(email))
        if normalise_name(p.last_name) == normalise_name(last_name)
    ]
    if len(candidates) > 1:  # e.g. twins sharing the family address
        candidates = [p for p in candidates if normalise_name(p.first_name) == normalise_name(first_name)]
    return candidates[0] if len(candidates) == 1 else (None if not candidates else False)


def request_access(
    *,
    practice: Practice,
    first_name: str,
    last_name: str,
    date_of_birth: datetime.date,
    email: str,
    zip_code: str,
    birth_sex: str,
    now: datetime.datetime,
    language: str = "",
) -> str:
    """Handle a "Request portal access" form. Returns what happened, for logs and tests only:
    the page says the same thing whatever this returns.

    A chart matching last name, date of birth and email is invited at the address on file;
    with no match a new chart flagged "self sign-up, unverified" is created and invited.
    """
    match = _find_requesting_patient(
        practice, first_name=first_name, last_name=last_name, date_of_birth=date_of_birth, email=email
    )
    if match is False:
        logger.info("access request for practice %s matched several charts; nothing sent", practice.pk)
        return "ambiguous"
    if match is not None:
        if match.has_portal_account:
            return "already-registered"
        outcome = invite(match, now=now, source=Source.SELF_SIGNUP)
        return "matched" if outcome.created else "matched-not-eligible"
    with transaction.atomic():
        patient = Patient.objects.create(
            practice=practice,
            chart_number=f"WEB-{secrets.token_hex(5).upper()}",
            first_name=first_name,
            last_name=last_name,
            date_of_birth=date_of_birth,
            email=normalise_email(email),
            zip_code=zip_code,
            birth_sex=birth_sex,
            # They typed the address and asked us to email it.
            email_consent=True,
            self_signup_unverified=True,
            # The language they asked in (a chart that matched keeps its own).
            preferred_language=languages.supported(language) or practice.default_language,
        )
        outcome = invite(patient, now=now, source=Source.SELF_SIGNUP)
    return "created" if outcome.created else "created-not-eligible"


@no_referrer
@require_http_methods(["GET", "POST"])
def access_request_page(request: HttpRequest, practice_id: int) -> HttpResponse:
    practice = get_object_or_404(Practice, pk=practice_id, self_signup_enabled=True)
    if request.method == "GET":
        return render(request, "portal/request_access.html", {"practice": practice, "form": AccessRequestForm()})
    if not throttle.allow(
        "access-request", throttle.client_ip(request),
        limit=ACCESS_REQUEST_LIMIT[0], window_seconds=ACCESS_REQUEST_LIMIT[1],
    ):
        return render(request, "portal/rate_limited.html", {"practice": practice}, status=429)
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        return render(request, "portal/request_access.html", {"practice": practice, "form": form}, status=400)
    data = form.cleaned_data
    if throttle.allow(
        "access-request-email", f"{practice.pk}:{data['email'].lower()}",
        limit=ACCESS_REQUEST_EMAIL_LIMIT[0], window_seconds=ACCESS_REQUEST_EMAIL_LIMIT[1],
    ):
        # Matching the chart, creating one, inviting: a worker's job. Done here, a registered
        # patient's request was answered in 8 ms and a stranger's in 26 ms.
        fields = {**data, "date_of_birth": data["date_of_birth"].isoformat(), "language": translation.get_language()}
        enqueue_on_commit(HANDLE_TASK, practice.pk, fields, private=True)
    # Whatever happened, the same work and the same answer: the page never tells who is a patient.
    return render(request, "portal/request_access_done.html", {"practice": practice})
