"""'Why did this patient get no invite?': every check, pass or fail, with the fix in plain words.

This replaces the manual troubleshooting checklist staff walk through (source article 000). It
reuses the eligibility rules (one query for all of them), then looks at the last invitation's
history and the services the email depends on, so "the patient says they got nothing" is answered
without reading logs.
"""

import datetime
import zoneinfo
from dataclasses import dataclass, field
from typing import Optional

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from patients import health
from patients.models import EmailOptOut, Patient

from . import eligibility
from .models import EventKind, Invitation, Status
from .tracking import latest_received_at

PENDING_TOO_LONG = datetime.timedelta(minutes=10)
REPORTS_RECENT = datetime.timedelta(days=7)
NON_SENDING_BACKENDS = ("filebased", "console", "locmem", "dummy")


@dataclass
class Check:
    label: str
    ok: Optional[bool]  # None: information, or not known
    detail: str = ""
    fix: str = ""
    link_url: str = ""
    link_text: str = ""


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)

    @property
    def failing(self) -> int:
        return sum(1 for check in self.checks if check.ok is False)


# code -> (what passing means, the fix, where it is fixed)
RULE_CHECKS: dict[str, tuple[str, str, str]] = {
    "invitations_disabled": ("Portal invitations are turned on for the practice", "A practice admin turns on 'patient portal invitations enabled' in the practice settings.", "practice"),
    "activation_email_disabled": ("The activation email is turned on", "A practice admin turns on 'activation email enabled' in the practice settings.", "practice"),
    "registered": ("The patient has no portal account yet", "Nothing to send: the patient is registered. They can use 'Forgot your password?' on the portal sign-in page.", ""),
    "deceased": ("The patient is not marked deceased", "If this is a mistake, untick 'deceased' on the chart.", "patient:deceased"),
    "missing_first_name": ("First name is on the chart", "Add the first name on the chart.", "patient:first_name"),
    "missing_last_name": ("Last name is on the chart", "Add the last name on the chart.", "patient:last_name"),
    "missing_date_of_birth": ("Date of birth is on the chart", "Add the date of birth on the chart.", "patient:date_of_birth"),
    "missing_zip_code": ("ZIP code is on the chart", "Add the ZIP code on the chart.", "patient:zip_code"),
    "missing_email": ("An email address is on the chart", "Ask the patient for an email address and add it to the chart.", "patient:email"),
    "missing_birth_sex": ("Birth sex is on the chart", "Add the birth sex on the chart.", "patient:birth_sex"),
    "invalid_email": ("The email address looks valid", "Correct the email address on the chart (check for typos).", "patient:email"),
    "no_consent": ("The patient consented to email", "Ask the patient for consent to email, then tick 'consents to email' on the chart.", "patient:email_consent"),
    "opted_out": ("The address is not on the practice's opt-out list", "The patient asked to stop emails or reported one as spam. Remove the address from the opt-out list only if the patient asks for email again.", "optout"),
    "hard_bounce": ("Email to this address has not bounced", "The address bounced permanently. Confirm it with the patient and correct it on the chart; a changed address can be invited again.", "patient:email"),
    "open_invitation": ("No valid link is already out", "The patient already has a working link. If they cannot find it, use Resend: it sends a new link and stops the old one.", "patient"),
    "invited_recently": ("No invitation went to this address in the last hour", "Wait an hour before inviting again; it protects the practice's email reputation.", ""),
}
SECTIONS = {
    "Practice settings": ["invitations_disabled", "activation_email_disabled"],
    "Patient's chart": [
        "registered", "deceased", "missing_first_name", "missing_last_name", "missing_date_of_birth",
        "missing_zip_code", "missing_email", "missing_birth_sex", "invalid_email", "no_consent",
    ],
    "Email address": ["opted_out", "hard_bounce"],
    "Invitations": ["open_invitation", "invited_recently"],
}


def _link(where: str, patient: Patient) -> tuple[str, str]:
    if where == "practice":
        return reverse("admin:patients_practice_change", args=[patient.practice_id]), "Open practice settings"
    if where == "optout":
        entry = EmailOptOut.objects.matching(patient.practice_id, patient.email).first()
        if entry is not None:
            return reverse("admin:patients_emailoptout_change", args=[entry.pk]), "Open the opt-out entry"
        return reverse("admin:patients_emailoptout_changelist"), "Open the opt-out list"
    if where.startswith("patient"):
        anchor = where.partition(":")[2]
        url = reverse("admin:patients_patient_change", args=[patient.pk])
        return url + (f"#id_{anchor}" if anchor else ""), "Open the chart"
    return "", ""


def diagnose(patient: Patient, *, now: datetime.datetime) -> list[Section]:
    failing = {reason.code for reason in eligibility.reasons_for(patient, now=now)}
    sections = []
    for title, codes in SECTIONS.items():
        section = Section(title)
        for code in codes:
            label, fix, where = RULE_CHECKS[code]
            ok = code not in failing
            url, text = _link(where, patient) if not ok else ("", "")
            detail = "" if ok else eligibility.RULES_BY_CODE[code].message
            section.checks.append(Check(label, ok, detail, "" if ok else fix, url, text))
        sections.append(section)
    sections.append(_last_invitation(patient, now=now))
    sections.append(_services(now=now))
    return sections


def _when(moment: Optional[datetime.datetime], tz: str) -> str:
    if moment is None:
        return ""
    return date_format(timezone.localtime(moment, zoneinfo.ZoneInfo(tz)), "N j, Y, g:i A")


def _last_invitation(patient: Patient, *, now: datetime.datetime) -> Section:
    section = Section("Last invitation")
    invitation = (
        Invitation.objects.filter(patient=patient).order_by("-created_at", "-pk").prefetch_related("events").first()
    )
    if invitation is None:
        section.checks.append(Check("An invitation was created", False, "This patient has never been sent an invitation.", "Send one from the chart once the checks above pass.", *_link("patient", patient)))
        return section
    tz = patient.practice.time_zone
    kinds = {event.kind for event in invitation.events.all()}
    url = reverse("admin:invitations_invitation_change", args=[invitation.pk])
    section.checks.append(Check("An invitation was created", True, f"{invitation.get_source_display()} invitation to {invitation.email}, {_when(invitation.created_at, tz)}.", link_url=url, link_text="Open the invitation"))

    if invitation.sent_at:
        section.checks.append(Check("It was handed to the email service", True, _when(invitation.sent_at, tz)))
    elif invitation.status == Status.FAILED:
        section.checks.append(Check("It was handed to the email service", False, invitation.failure_reason, "Fix the cause (often the address), then use Resend."))
    elif invitation.status == Status.PENDING:
        stuck = now - invitation.created_at > PENDING_TOO_LONG
        section.checks.append(Check(
            "It was handed to the email service", False if stuck else None,
            "Still waiting to be sent" + (f" since {_when(invitation.created_at, tz)}." if stuck else "."),
            "No worker has picked it up: ask whoever runs the system to check the Celery workers (system status page)." if stuck else "",
        ))
    else:
        section.checks.append(Check("It was handed to the email service", False, f"It was {invitation.get_status_display().lower()} before it was sent."))

    if EventKind.BOUNCED in kinds:
        section.checks.append(Check("It did not bounce", False, invitation.failure_reason or "The email service reported a bounce.", RULE_CHECKS["hard_bounce"][1], *_link("patient:email", patient)))
    elif EventKind.DELIVERED in kinds:
        section.checks.append(Check("The email service confirmed delivery", True, "If the patient cannot find it, ask them to look in their spam or junk folder."))
    elif invitation.sent_at:
        section.checks.append(Check("The email service confirmed delivery", None, "No delivery report has arrived for this email yet."))

    if EventKind.COMPLAINED in kinds:
        section.checks.append(Check("It was not reported as spam", False, "The patient marked the email as spam; the address is on the opt-out list."))
    if EventKind.LINK_OPENED in kinds:
        section.checks.append(Check("The patient opened the link", True, "They reached the registration page."))
    if invitation.status == Status.REVOKED:
        section.checks.append(Check("The link was not revoked", False, f"Revoked: {invitation.get_revoke_reason_display()}.", "Use Resend to send a new link.", *_link("patient", patient)))
    elif invitation.status == Status.ACCEPTED:
        section.checks.append(Check("The patient registered", True, _when(invitation.accepted_at, tz)))
    elif invitation.is_expired(now) or invitation.status == Status.EXPIRED:
        section.checks.append(Check("The link has not expired", False, f"It expired on {_when(invitation.expires_at, tz)}.", "Use Resend to send a new link.", *_link("patient", patient)))
    elif invitation.status == Status.SENT:
        section.checks.append(Check("The link has not expired", True, f"It works until {_when(invitation.expires_at, tz)}."))
    return section


def _services(*, now: datetime.datetime) -> Section:
    section = Section("Services")
    ops_fix = "Ask whoever runs the system to check it (Admin → System status)."
    for check in health.run_all(now)[1:]:  # the database answered, or this page would not show
        label = {"broker": "The task queue (broker) is reachable", "worker": "A background worker is running"}[check.name]
        section.checks.append(Check(label, check.ok, check.detail, "" if check.ok else ops_fix))
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2] if "." in settings.EMAIL_BACKEND else settings.EMAIL_BACKEND
    if any(name in settings.EMAIL_BACKEND for name in NON_SENDING_BACKENDS):
        section.checks.append(Check(
            "Emails go to a real email service", None if settings.DEBUG else False,
            f"The '{backend}' backend keeps emails on this server instead of sending them.",
            "" if settings.DEBUG else "Set EMAIL_PROVIDER and its ANYMAIL_* key (see the README).",
        ))
    else:
        section.checks.append(Check("Emails go to a real email service", True, backend))
    received = latest_received_at()
    if received is None:
        section.checks.append(Check("Delivery reports arrive from the email service", None, "None received yet, so delivery and bounces cannot be confirmed.", "Set up the email service's tracking webhook (README)."))
    else:
        recent = now - received <= REPORTS_RECENT
        section.checks.append(Check("Delivery reports arrive from the email service", True if recent else None, f"Last one {int((now - received).total_seconds() // 3600)} hours ago."))
    return section
