"""'Why did this patient get no invite?': every check, pass or fail, with the fix in plain words.

This replaces the manual troubleshooting checklist staff walk through (source article 000). It
reuses the eligibility rules (one query for all of them), then looks at the last invitation's
history and the services the email depends on, so "the patient says they got nothing" is answered
without reading logs. A verdict on top says whether an invitation can be sent now and what to do
first.

Only rules and services pass or fail. What happened before (whether an invitation was ever made)
is information: it explains, it does not count as a failed check. A rule that needs something the
chart lacks (an address) is "not checked", never a tick.

One source of truth (`outlook`): each rule's verdict from eligibility, read per channel. The page,
its headline and the patient page's invitation box all read it, so they cannot disagree:

* a row's title states what passing means; a failed row's detail says what is wrong; a row whose
  failure stops nothing (texts are not possible while email works) says so in its own title;
* a text rule blocks only when email cannot be used for good (no address, no consent, opted out,
  bounced): while the email channel works, or waits only for the hour after a link went out, a
  missing mobile number is "texts not possible" information, never "cannot be sent";
* the headline says by which channel an invitation would go, and counts only what blocks.
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
from patients.models import EmailOptOut, Patient, normalise_email

from invitations import eligibility
from invitations.models import Channel, EventKind, Invitation, Status
from invitations.models.delivery_reports import latest_received_at

PENDING_TOO_LONG = datetime.timedelta(minutes=10)
REPORTS_RECENT = datetime.timedelta(days=7)
NON_SENDING_BACKENDS = ("filebased", "console", "locmem", "dummy")


@dataclass
class Check:
    label: str
    ok: Optional[bool]  # True passed, False failed; None: information, not known, or not checked
    detail: str = ""
    fix: str = ""
    link_url: str = ""
    link_text: str = ""
    #: With ok=None: the check needs something the chart lacks, so it was not made.
    not_checked: bool = False


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
    "texts_disabled": ("Invitation texts are turned on for the practice", "A practice admin turns on 'invitation texts enabled' in the practice settings.", "practice"),
    "missing_mobile": ("A mobile number is on the chart", "Ask the patient for a mobile number and add it to the chart.", "patient:mobile_phone"),
    "invalid_mobile": ("The mobile number is valid", "Correct the mobile number on the chart.", "patient:mobile_phone"),
    "no_sms_consent": ("The patient consented to texts", "Ask the patient for consent to text messages, then tick 'consents to texts' on the chart.", "patient:sms_consent"),
    "sms_opted_out": ("The number has not replied STOP", "The patient replied STOP. Texts resume only when they reply START to the practice's number.", "smsoptout"),
    "undeliverable_mobile": ("Texts to this number can be delivered", "The text service could not deliver to this number (invalid, or a landline). Confirm the mobile number with the patient and correct it on the chart.", "patient:mobile_phone"),
    "texted_recently": ("No text went to this number in the last hour", "Wait an hour before texting again.", ""),
    "child_no_own_account": ("The patient is old enough for an own account", "Children under the practice's own-account age are invited through a parent or guardian: add one under Representatives on the patient's page and invite them.", "patient"),
    "email_is_representatives": ("The email address is the patient's own, not a representative's", "Ask the patient for their own email address and enter it on the chart (or invite by text to their own mobile).", "patient:email"),
    "mobile_is_representatives": ("The mobile number is the patient's own, not a representative's", "Ask the patient for their own mobile number and enter it on the chart.", "patient:mobile_phone"),
}
#: Rules that only apply to an address: with none on the chart they pass vacuously in
#: eligibility, and here they are "not checked" instead of a tick.
NEEDS_ADDRESS = ("invalid_email", "opted_out", "hard_bounce", "invited_recently")
NO_ADDRESS = "Not checked: there is no email address on the chart."
NEEDS_MOBILE = ("invalid_mobile", "sms_opted_out", "undeliverable_mobile", "texted_recently")
NO_MOBILE = "Not checked: there is no mobile number on the chart."
TEXTS_OFF = "Not checked: invitation texts are turned off for this practice."
#: The rules of each channel, in eligibility's order (the text section lists them all).
TEXT_RULES = [rule.code for rule in eligibility.RULES if rule.channel == Channel.TEXT]
EMAIL_RULES = {rule.code for rule in eligibility.RULES if rule.channel == Channel.EMAIL}
SECTIONS = {
    "Practice settings": ["invitations_disabled", "activation_email_disabled"],
    "Patient's chart": [
        "registered", "deceased", "child_no_own_account", "missing_first_name", "missing_last_name", "missing_date_of_birth",
        "missing_zip_code", "missing_email", "missing_birth_sex", "invalid_email", "no_consent",
    ],
    "Email address": ["opted_out", "hard_bounce", "email_is_representatives"],
    "Invitations": ["open_invitation", "invited_recently"],
    "Text message": TEXT_RULES,
}
#: Which failing rule the verdict names first: a patient who is registered or deceased needs no
#: fix at all, whatever else fails; otherwise the page order (practice, chart, address, links).
FIRST_FIX_ORDER = ["registered", "deceased"] + [
    code for codes in SECTIONS.values() for code in codes if code not in ("registered", "deceased")
]
SEE_VERDICT = "A new link cannot be sent now: see what to do first at the top of this page."
#: Email rules that only wait (for the hour after a link went out): email stays the channel.
EMAIL_WAITS = {"invited_recently"}
#: Rules that only wait, on either channel: a channel that waits is not "cannot be used".
WAITS = EMAIL_WAITS | {"texted_recently"}


@dataclass
class Outlook:
    """What the rules say about inviting one patient now, per channel: the one reading that the
    "Why no invite?" page and the patient page's invitation box share."""

    #: Every rule's verdict (True: it blocks), whatever the channel.
    verdicts: dict[str, bool]
    #: The channels a new invitation would use now (the front desk's default: email, else a text).
    channels: tuple[str, ...]
    #: What stops a new invitation now, relevant channels only (empty: it can be sent).
    blocking: list[eligibility.Reason]
    #: What stops a Resend now (it replaces an open link on purpose), relevant channels only.
    resend_blocking: list[eligibility.Reason]
    #: (channel, why not) for each channel that cannot be used now while the practice uses it:
    #: information when the other channel carries the invitation.
    unusable: list[tuple[str, list[eligibility.Reason]]]

    @property
    def texts_enabled(self) -> bool:
        return not self.verdicts.get("texts_disabled", False)

    def channel_notes(self) -> list[tuple[str, str]]:
        """("Text message", "Mobile phone number is missing. ...") for each channel that cannot be used."""
        return [(Channel(channel).label, eligibility.reasons_text(why)) for channel, why in self.unusable]


def _relevant(reasons: list, verdicts: dict[str, bool]) -> list:
    """`reasons` without the text rules when email is the channel: email works, or only waits for
    the hour after a link went out. Texts matter only when email cannot be used for good."""
    email_blocked_for_good = any(
        blocked and eligibility.RULES_BY_CODE[code].channel == Channel.EMAIL and code not in EMAIL_WAITS
        for code, blocked in verdicts.items() if code in eligibility.RULES_BY_CODE
    )
    if email_blocked_for_good:
        return list(reasons)
    return [r for r in reasons if eligibility.RULES_BY_CODE[r.code].channel != Channel.TEXT]


def outlook(patient: Patient, *, now: datetime.datetime) -> Outlook:
    """The rules' reading for `patient` at `now` (two queries: a new invitation and a resend)."""
    verdicts, decision = eligibility.rule_verdicts(patient, now=now)
    _, resend = eligibility.rule_verdicts(patient, now=now, for_resend=True)
    texts_enabled = not verdicts.get("texts_disabled", False)
    unusable = []
    for channel in (Channel.EMAIL, Channel.TEXT):
        if channel == Channel.TEXT and not texts_enabled:
            continue
        why = [
            rule.reason for rule in eligibility.RULES
            if rule.channel == channel and verdicts.get(rule.code) and rule.code not in WAITS
            and channel not in decision.channels
        ]
        if why:
            unusable.append((channel, why))
    return Outlook(
        verdicts=verdicts,
        channels=decision.channels,
        blocking=_relevant(decision.reasons, verdicts),
        resend_blocking=_relevant(resend.reasons, verdicts),
        unusable=unusable,
    )


@dataclass
class Verdict:
    """The answer at the top of the page: can an invitation be sent now, and what to do first."""

    can_send_now: bool
    headline: str
    tone: str  # "pass", "info" or "fail": the colour of the headline
    reason: str = ""
    first_step: str = ""
    link_url: str = ""
    link_text: str = ""
    #: How many more rule checks block an invitation besides the one named first.
    also_blocking: int = 0
    #: When rules block and a service is down too: fixing the rules alone will not send the email.
    services_note: str = ""
    #: A channel that cannot be used while the other one carries the invitation ("Texts are not
    #: possible: ..."): information, not a block.
    channels_note: str = ""


class Diagnosis(list):
    """The page's sections in order and its verdict. A list, so the admin view that sums the
    sections' failures and the template that loops over them stay as they are."""

    def __init__(self, sections: list[Section], verdict: Verdict):
        super().__init__(sections)
        self.verdict = verdict


def _link(where: str, patient: Patient) -> tuple[str, str]:
    if where == "practice":
        return reverse("admin:patients_practice_change", args=[patient.practice_id]), "Open practice settings"
    if where == "optout":
        entry = EmailOptOut.objects.matching(patient.practice_id, patient.email).first()
        if entry is not None:
            return reverse("admin:patients_emailoptout_change", args=[entry.pk]), "Open the opt-out entry"
        return reverse("admin:patients_emailoptout_changelist"), "Open the opt-out list"
    if where == "smsoptout":
        entry = patient.practice.sms_opt_outs.filter(phone=patient.mobile_phone).first()
        if entry is not None:
            return reverse("admin:patients_smsoptout_change", args=[entry.pk]), "Open the text opt-out entry"
        return reverse("admin:patients_smsoptout_changelist"), "Open the text opt-out list"
    if where.startswith("patient"):
        anchor = where.partition(":")[2]
        url = reverse("admin:patients_patient_change", args=[patient.pk])
        return url + (f"#id_{anchor}" if anchor else ""), "Open the chart"
    return "", ""


def diagnose(patient: Patient, *, now: datetime.datetime) -> Diagnosis:
    """Every check for `patient` at `now`, in page order, and the verdict on top."""
    reading = outlook(patient, now=now)
    verdicts = reading.verdicts
    failing = [reason.code for reason in reading.blocking]
    # Resend replaces an open link on purpose; every other rule blocks it like a new invite.
    resend_blockers = {code for code in failing if not eligibility.RULES_BY_CODE[code].resend_ignores}
    no_address = verdicts.get("missing_email", False)
    invitation = (
        Invitation.objects.filter(patient=patient).order_by("-created_at", "-pk").prefetch_related("events").first()
    )
    # The one-hour rule only counts working links, so while it blocks, the newest one is the link in question.
    resend_from = (
        _when(invitation.created_at + eligibility.RECENT_INVITATION_WINDOW, patient.practice.time_zone)
        if invitation is not None and "invited_recently" in failing else ""
    )
    sections = []
    for title, codes in SECTIONS.items():
        section = Section(title)
        for code in codes:
            label = RULE_CHECKS[code][0]
            if code in failing:
                url, text = _link(RULE_CHECKS[code][2], patient)
                detail, fix = _rule_detail(code, resend_blockers), _rule_fix(code, resend_blockers, resend_from)
                section.checks.append(Check(label, False, detail, fix, url, text))
            elif no_address and code in NEEDS_ADDRESS:
                section.checks.append(Check(label, None, NO_ADDRESS, not_checked=True))
            elif code in TEXT_RULES or verdicts.get(code):
                section.checks.append(_channel_check(code, label, patient, reading))
            else:
                section.checks.append(Check(label, True))
        sections.append(section)
    sections.append(_last_invitation(patient, invitation, now=now, verdicts=verdicts, can_resend=not resend_blockers))
    services = _services(now=now)
    sections.append(services)
    return Diagnosis(sections, _verdict(patient, failing, resend_blockers, resend_from, services, reading))


def _channel_check(code: str, label: str, patient: Patient, reading: Outlook) -> Check:
    """A channel's rule that does not stop the invitation: it passes, was not checked, or rules out
    its channel only while the other one carries the invitation. That last is information titled
    by what it found ("Mobile phone number is missing", "Email to this address bounced
    permanently"), so the title never claims what the detail denies."""
    verdicts = reading.verdicts
    texts_off = not reading.texts_enabled
    if code in TEXT_RULES and texts_off:
        if code == "texts_disabled":  # titled by what it found: the title never claims texts are on
            return Check(eligibility.RULES_BY_CODE[code].message.rstrip("."), None, "Invitations go by email only.")
        return Check(label, None, TEXTS_OFF, not_checked=True)
    if code in NEEDS_MOBILE and not patient.mobile_phone:
        return Check(label, None, NO_MOBILE, not_checked=True)
    if not verdicts.get(code):
        return Check(label, True)
    message = eligibility.RULES_BY_CODE[code].message
    url, text = _link(RULE_CHECKS[code][2], patient)
    channel_out = "Email cannot be used, so invitations go by text message only." if code in EMAIL_RULES else (
        "Texts are not possible, so invitations go by email only."
    )
    return Check(message.rstrip("."), None, channel_out, RULE_CHECKS[code][1], url, text)


def _rule_detail(code: str, resend_blockers: set[str]) -> str:
    if code == "open_invitation" and resend_blockers:
        # The rule's message recommends Resend, which the other failing rules refuse too.
        return "The patient already has a valid invitation."
    return eligibility.RULES_BY_CODE[code].message


def _rule_fix(code: str, resend_blockers: set[str], resend_from: str) -> str:
    fix = RULE_CHECKS[code][1]
    if code != "open_invitation" or not resend_blockers:
        return fix
    # The usual fix is Resend, which the other failing rules refuse too.
    if resend_blockers == {"invited_recently"}:
        return (
            "The patient already has a working link, sent less than an hour ago. If they cannot find it, "
            "ask them to look in their spam or junk folder; Resend is possible once the hour is up"
            + (f" ({resend_from})." if resend_from else ".")
        )
    return "The patient already has a working link. A new one cannot be sent until the other failing checks are fixed."


def _verdict(
    patient: Patient, failing: list[str], resend_blockers: set[str], resend_from: str, services: Section,
    reading: Outlook,
) -> Verdict:
    broken = next((check for check in services.checks if check.ok is False), None)
    if failing:
        first = min(failing, key=FIRST_FIX_ORDER.index)
        url, text = _link(RULE_CHECKS[first][2], patient)
        also_blocking = len(failing) - 1
        if first == "open_invitation" and resend_blockers <= EMAIL_WAITS:
            # The patient has a working link: nothing is wrong. Resend replaces it, now or once the
            # hour since it went out is up (the same story, not one more block).
            headline = "No new invitation is needed: the patient already has a working link" + (
                ", and Resend can replace it." if not resend_blockers else "."
            )
            tone, reason, also_blocking = "info", "", 0
        else:
            headline, tone, reason = "No: an invitation cannot be sent now.", "fail", _rule_detail(first, resend_blockers)
        return Verdict(
            can_send_now=False,
            headline=headline,
            tone=tone,
            reason=reason,
            first_step=_rule_fix(first, resend_blockers, resend_from),
            link_url=url,
            link_text=text,
            also_blocking=also_blocking,
            services_note=(
                f"Even then, no email would go out now: “{broken.label}” failed below."
                if broken and first not in ("registered", "deceased") else ""
            ),
            channels_note=_channels_note(reading) if first not in ("registered", "deceased") else "",
        )
    if broken is not None:
        return Verdict(
            can_send_now=False,
            headline="Not yet: the patient can be invited, but the email would not go out now.",
            reason=f"Failed below: “{broken.label}”" + (f" ({broken.detail})." if broken.detail else "."),
            first_step=broken.fix,
            tone="fail",
        )
    url, _ = _link("patient", patient)
    by = " and ".join(Channel(channel).label.lower() for channel in reading.channels) or "email"
    only = " only" if reading.unusable else ""
    return Verdict(
        can_send_now=True,
        headline=f"Yes: an invitation can be sent now, by {by}{only}.",
        tone="pass",
        first_step="Use 'Send portal invitation' on the chart (front desk, managers and practice admins can).",
        link_url=url,
        link_text="Open the chart",
        channels_note=_channels_note(reading),
    )


def _channels_note(reading: Outlook) -> str:
    """ "Email cannot be used: ... " / "Texts are not possible: ..." for the channels that cannot
    carry an invitation now, where the practice uses them (the rows below say how to fix each)."""
    words = {Channel.EMAIL: "Email cannot be used", Channel.TEXT: "Texts are not possible"}
    return " ".join(f"{words[channel]}: {eligibility.reasons_text(why)}" for channel, why in reading.unusable)


def _when(moment: Optional[datetime.datetime], tz: str) -> str:
    if moment is None:
        return ""
    return date_format(timezone.localtime(moment, zoneinfo.ZoneInfo(tz)), "N j, Y, g:i A")


def _last_invitation(
    patient: Patient, invitation: Optional[Invitation], *, now: datetime.datetime, verdicts: dict[str, bool],
    can_resend: bool,
) -> Section:
    """What happened to the newest invitation. That one exists is information, not a check."""
    section = Section("Last invitation")
    if invitation is None:
        section.checks.append(Check("No invitation has been made for this patient", None, "There is no email to trace yet."))
        return section
    tz = patient.practice.time_zone
    kinds = {event.kind for event in invitation.events.all()}
    url = reverse("admin:invitations_invitation_change", args=[invitation.pk])
    address_changed = normalise_email(patient.email) != invitation.email
    made = f"{invitation.get_source_display()} invitation to {invitation.email}, {_when(invitation.created_at, tz)}."
    if address_changed:
        made += " The chart's address has changed since."
    section.checks.append(Check("An invitation was made", None, made, link_url=url, link_text="Open the invitation"))
    new_link = "Use Resend to send a new link." if can_resend else SEE_VERDICT
    new_link_url, new_link_text = _link("patient", patient) if can_resend else ("", "")

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
        bounced = invitation.failure_reason or "The email service reported a bounce."
        if verdicts.get("hard_bounce"):  # the same verdict as the "has not bounced" row above
            section.checks.append(Check("It did not bounce", False, bounced, RULE_CHECKS["hard_bounce"][1], *_link("patient:email", patient)))
        else:
            # The address was corrected (or cleared) since: the bounce explains the past only.
            section.checks.append(Check("It did not bounce", False, f"{bounced} The address on the chart is no longer marked as bounced."))
    elif EventKind.DELIVERED in kinds:
        section.checks.append(Check("The email service confirmed delivery", True, "If the patient cannot find it, ask them to look in their spam or junk folder."))
    elif invitation.sent_at:
        section.checks.append(Check("The email service confirmed delivery", None, "No delivery report has arrived for this email yet."))

    if EventKind.COMPLAINED in kinds:
        if address_changed:
            now_listed = "the chart now has " + ("a different address." if patient.email else "no address.")
        elif verdicts.get("opted_out"):
            now_listed = "the address is on the opt-out list."
        else:
            now_listed = "the address has since been taken off the opt-out list."
        section.checks.append(Check("It was not reported as spam", False, f"The patient marked the email as spam; {now_listed}"))
    if EventKind.LINK_OPENED in kinds:
        section.checks.append(Check("The patient opened the link", True, "They reached the registration page."))
    if invitation.status == Status.REVOKED:
        section.checks.append(Check("The link was not revoked", False, f"Revoked: {invitation.get_revoke_reason_display()}.", new_link, new_link_url, new_link_text))
    elif invitation.status == Status.ACCEPTED:
        section.checks.append(Check("The patient registered", True, _when(invitation.accepted_at, tz)))
    elif invitation.is_expired(now) or invitation.status == Status.EXPIRED:
        section.checks.append(Check("The link has not expired", False, f"It expired on {_when(invitation.expires_at, tz)}.", new_link, new_link_url, new_link_text))
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
