"""Why a patient cannot be invited now, and by which channel they can: every rule in one place.

Each rule is a database condition that is true when it *blocks* an invitation. A rule blocks the
whole invitation (``channel=""``: registered, deceased, a missing name...) or one channel: email
(no address, no email consent, opted out, bounced...) or text (no mobile number, no text
consent, replied STOP, undeliverable, texts turned off for the practice...). A `Plan` says which
channels an invitation may use:

* ``email`` / ``text``: that channel only; ``both``: both, each must be usable (the front desk's
  explicit choices);
* ``auto``: email when it can be used, else a text (the front desk's default; Activate Now's
  "email, then text"); at a practice with texts turned off this is exactly "email";
* ``each``: every usable channel, at least one (Activate Now's "email and text").

The same conditions serve one patient (`channels_for` / `reasons_for`: one query, every reason)
and a whole practice (`eligible`, `tally` for Activate Now's preview and the monthly run), so the
single invite, the new-patient checkbox, resend and bulk runs can never disagree.
"""

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable

from django.db import models
from django.db.models import BooleanField, Case, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.expressions import Expression

from patients.models import E164_SHAPE, BulkChannels, EmailOptOut, Patient, PatientQuerySet, SmsOptOut

from invitations.models import OPEN_STATUSES, Channel, Invitation
from invitations.vocabulary import SendBy

#: Another invitation to the same address within this window is refused (deliverability).
RECENT_INVITATION_WINDOW = datetime.timedelta(hours=1)
# Portable across SQLite and PostgreSQL; the form fields validate more strictly on entry,
# this catches what came in through imports or the shell.
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Rule:
    code: str
    message: str
    #: Builds the blocking condition for patient rows at `now`.
    blocks: Callable[[datetime.datetime], "Q | Expression"]
    #: Rules that only apply to a fresh invite: resend replaces the open link on purpose.
    resend_ignores: bool = False
    #: "" blocks the invitation whatever the channel; "email" or "text" blocks that channel.
    channel: str = ""

    @property
    def reason(self) -> Reason:
        return Reason(self.code, self.message)


def _has_email() -> Q:
    return ~Q(email="")


def _opted_out(now):
    return Exists(EmailOptOut.objects.filter(practice_id=OuterRef("practice_id"), email=OuterRef("email")))


def _invited_recently(now):
    # The rule stops mailing an address again right after it got a *working* link. A link that can
    # no longer be used (voided by five wrong answers, bounced, failed, revoked) must be
    # replaceable at once, so only links still open count.
    return Exists(
        Invitation.objects.filter(
            patient_id=OuterRef("pk"), email=OuterRef("email"), created_at__gt=now - RECENT_INVITATION_WINDOW,
            status__in=list(OPEN_STATUSES),
        )
    )


def _open_invitation(now):
    return Exists(Invitation.objects.usable(now).filter(patient_id=OuterRef("pk")))


def _has_mobile() -> Q:
    return ~Q(mobile_phone="")


def _texted_recently(now):
    return Exists(
        Invitation.objects.filter(
            patient_id=OuterRef("pk"), text_to=OuterRef("mobile_phone"), by_text=True,
            created_at__gt=now - RECENT_INVITATION_WINDOW, status__in=list(OPEN_STATUSES),
        )
    )


def _sms_opted_out(now):
    return Exists(SmsOptOut.objects.filter(practice_id=OuterRef("practice_id"), phone=OuterRef("mobile_phone")))


def _missing(field: str) -> Callable[[datetime.datetime], Q]:
    if field == "date_of_birth":
        return lambda now: Q(date_of_birth__isnull=True)
    return lambda now: Q(**{field: ""})


RULES: tuple[Rule, ...] = (
    Rule("invitations_disabled", "Portal invitations are turned off for this practice (practice settings).",
         lambda now: Q(practice__invitations_enabled=False)),
    Rule("activation_email_disabled", "The activation email is turned off for this practice (practice settings).",
         lambda now: Q(practice__activation_email_enabled=False), channel=Channel.EMAIL),
    Rule("registered", "Already registered: the patient has a portal account.",
         lambda now: Q(portal_user__isnull=False)),
    Rule("deceased", "The patient is marked deceased.", lambda now: Q(deceased=True)),
    Rule("missing_first_name", "First name is missing.", _missing("first_name")),
    Rule("missing_last_name", "Last name is missing.", _missing("last_name")),
    Rule("missing_date_of_birth", "Date of birth is missing.", _missing("date_of_birth")),
    Rule("missing_zip_code", "ZIP code is missing.", _missing("zip_code")),
    Rule("missing_email", "Email address is missing.", _missing("email"), channel=Channel.EMAIL),
    Rule("missing_birth_sex", "Birth sex is missing.", _missing("birth_sex")),
    Rule("invalid_email", "The email address is not valid; check it for typos.",
         lambda now: _has_email() & ~Q(email__regex=EMAIL_SHAPE), channel=Channel.EMAIL),
    Rule("no_consent", "The patient has not consented to email.", lambda now: Q(email_consent=False), channel=Channel.EMAIL),
    Rule("opted_out", "The email address is on the practice's opt-out list.",
         lambda now: _has_email() & Q(_opted_out(now)), channel=Channel.EMAIL),
    Rule("hard_bounce", "Email to this address bounced permanently; correct the address.",
         lambda now: _has_email() & Q(bounced_email=F("email")), channel=Channel.EMAIL),
    Rule("open_invitation", "The patient already has a valid invitation; use Resend to send a new link.",
         lambda now: Q(_open_invitation(now)), resend_ignores=True),
    Rule("invited_recently", "An invitation went to this address less than an hour ago; try again later.",
         lambda now: _has_email() & Q(_invited_recently(now)), channel=Channel.EMAIL),
    Rule("texts_disabled", "Invitation texts are turned off for this practice (practice settings).",
         lambda now: Q(practice__text_invitations_enabled=False), channel=Channel.TEXT),
    Rule("missing_mobile", "Mobile phone number is missing.", lambda now: Q(mobile_phone=""), channel=Channel.TEXT),
    Rule("invalid_mobile", "The mobile number is not a valid number in international form; correct it on the chart.",
         lambda now: _has_mobile() & ~Q(mobile_phone__regex=E164_SHAPE), channel=Channel.TEXT),
    Rule("no_sms_consent", "The patient has not consented to text messages.", lambda now: Q(sms_consent=False),
         channel=Channel.TEXT),
    Rule("sms_opted_out", "The mobile number replied STOP: it is on the practice's text opt-out list.",
         lambda now: _has_mobile() & Q(_sms_opted_out(now)), channel=Channel.TEXT),
    Rule("undeliverable_mobile", "Texts to this number cannot be delivered (the text service says it is invalid or "
         "a landline); correct the number.", lambda now: _has_mobile() & Q(undeliverable_mobile=F("mobile_phone")),
         channel=Channel.TEXT),
    Rule("texted_recently", "A text went to this number less than an hour ago; try again later.",
         lambda now: _has_mobile() & Q(_texted_recently(now)), channel=Channel.TEXT),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}


class Plan(models.TextChoices):
    """Which channels an invitation may use (module docstring)."""

    AUTO = "auto", "Email, or a text when email cannot be used"
    EMAIL = "email", "Email only"
    TEXT = "text", "Text only"
    BOTH = "both", "Email and text, both required"
    EACH = "each", "Email and text, each where it can be used"


#: The plan of a front-desk choice and of a practice's setting for bulk runs.
PLAN_OF_SEND_BY = {SendBy.AUTO: Plan.AUTO, SendBy.EMAIL: Plan.EMAIL, SendBy.TEXT: Plan.TEXT, SendBy.BOTH: Plan.BOTH}
PLAN_OF_BULK = {BulkChannels.EMAIL: Plan.EMAIL, BulkChannels.EMAIL_THEN_TEXT: Plan.AUTO, BulkChannels.BOTH: Plan.EACH}


def bulk_plan(practice) -> str:
    """The plan of the practice's Activate Now and monthly runs."""
    return PLAN_OF_BULK.get(practice.bulk_channels, Plan.EMAIL)


def _rules(*, for_resend: bool) -> list[Rule]:
    return [rule for rule in RULES if not (for_resend and rule.resend_ignores)]


def _flag(code: str) -> str:
    return f"blocked_{code}"


def _blocked_by(channel: str, *, now: datetime.datetime, for_resend: bool) -> Q:
    """True when a rule of `channel` ("" for the whole invitation) blocks the row."""
    condition = Q(pk__in=[])
    for rule in _rules(for_resend=for_resend):
        if rule.channel == channel:
            condition |= Q(rule.blocks(now))
    return condition


@dataclass(frozen=True)
class Conditions:
    """A plan as conditions on patient rows: blocked at all; gets an email; gets a text."""

    blocked: Q
    email: Q
    text: Q


def conditions(plan: str, *, now: datetime.datetime, for_resend: bool = False) -> Conditions:
    common = _blocked_by("", now=now, for_resend=for_resend)
    no_email = _blocked_by(Channel.EMAIL, now=now, for_resend=for_resend)
    no_text = _blocked_by(Channel.TEXT, now=now, for_resend=for_resend)
    never = Q(pk__in=[])
    if plan == Plan.EMAIL:
        return Conditions(common | no_email, ~no_email, never)
    if plan == Plan.TEXT:
        return Conditions(common | no_text, never, ~no_text)
    if plan == Plan.BOTH:
        return Conditions(common | no_email | no_text, ~no_email, ~no_text)
    if plan == Plan.EACH:
        return Conditions(common | (no_email & no_text), ~no_email, ~no_text)
    return Conditions(common | (no_email & no_text), ~no_email, no_email & ~no_text)  # AUTO


def blocking_condition(*, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO) -> Q:
    """True for a patient that the rules block under `plan`."""
    return conditions(plan, now=now, for_resend=for_resend).blocked


def eligible(queryset: PatientQuerySet, *, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO) -> PatientQuerySet:
    """The patients of `queryset` that can be invited now (for bulk runs), each annotated with
    the channels it gets: ``gets_email`` and ``gets_text``."""
    plan_conditions = conditions(plan, now=now, for_resend=for_resend)
    return queryset.exclude(plan_conditions.blocked).annotate(
        gets_email=Case(When(plan_conditions.email, then=Value(True)), default=Value(False), output_field=BooleanField()),
        gets_text=Case(When(plan_conditions.text, then=Value(True)), default=Value(False), output_field=BooleanField()),
    )


def _counted(rule: Rule, plan: str) -> bool:
    """Whether `rule` is one of the reasons a plan's skips are counted under: a channel's rules
    only where the plan uses it (texts only where the practice enables them, see `_count_filter`)."""
    if rule.channel == Channel.EMAIL:
        return plan != Plan.TEXT
    if rule.channel == Channel.TEXT:
        return plan != Plan.EMAIL and not (rule.code == "texts_disabled" and plan in (Plan.AUTO, Plan.EACH))
    return True


def _count_filter(rule: Rule, plan: str, *, blocked: Q, now: datetime.datetime) -> Q:
    condition = Q(rule.blocks(now)) & blocked
    if rule.channel == Channel.TEXT and plan in (Plan.AUTO, Plan.EACH):
        condition &= Q(practice__text_invitations_enabled=True)  # an email-only practice's skips are email's
    return condition


@dataclass(frozen=True)
class Tally:
    considered: int
    #: None when not asked for (a bulk run's planner counts the ids it lists instead).
    eligible: "int | None"
    #: How many patients each rule blocks (a patient blocked twice counts under both); a channel's
    #: rules count only patients the plan skips (one reachable by text is no "missing email" skip).
    skip_counts: dict[str, int]
    #: How many of the eligible get an email, and a text (None when `eligible` is).
    emails: "int | None" = None
    texts: "int | None" = None


def tally(
    queryset: PatientQuerySet, *, now: datetime.datetime, with_eligible: bool = True, for_resend: bool = False,
    plan: str = Plan.AUTO,
) -> Tally:
    """One scan of `queryset`: how many patients, how many no rule blocks (and by which channel
    they would be invited), how many each rule blocks (Activate Now's preview, the dashboard's
    "not eligible" figures, a run's summary)."""
    plan_conditions = conditions(plan, now=now, for_resend=for_resend)
    rules = [rule for rule in _rules(for_resend=for_resend) if _counted(rule, plan)]
    invited = ~plan_conditions.blocked
    counts = queryset.aggregate(
        considered=Count("pk"),
        **(
            {
                "eligible": Count("pk", filter=invited),
                "emails": Count("pk", filter=invited & plan_conditions.email),
                "texts": Count("pk", filter=invited & plan_conditions.text),
            }
            if with_eligible else {}
        ),
        **{
            f"rule_{rule.code}": Count("pk", filter=_count_filter(rule, plan, blocked=plan_conditions.blocked, now=now))
            for rule in rules
        },
    )
    return Tally(
        considered=counts["considered"],
        eligible=counts.get("eligible"),
        skip_counts={rule.code: counts[f"rule_{rule.code}"] for rule in rules},
        emails=counts.get("emails"),
        texts=counts.get("texts"),
    )


#: Reasons that describe a patient who is waiting on an invitation, not one who cannot get one.
NOT_A_SKIP_FOR_DASHBOARD = {"registered", "open_invitation", "invited_recently", "texted_recently"}


@dataclass
class Preview:
    """What inviting a set of patients would do: how many are invited (by email, by text), how
    many skipped and why."""

    considered: int
    eligible: int
    #: (rule, count) for every rule that skips someone, largest first.
    reasons: list[tuple[Rule, int]] = field(default_factory=list)
    #: Of the eligible, how many get an email and how many a text (both, under "each").
    emails: "int | None" = None
    texts: int = 0

    @property
    def skipped(self) -> int:
        return self.considered - self.eligible

    @property
    def skip_counts(self) -> dict[str, int]:
        return {rule.code: count for rule, count in self.reasons}

    @property
    def messages(self) -> list[tuple[str, int]]:
        """("Emails", n), ("Texts", n): what the run would send, per channel."""
        emails = self.eligible if self.emails is None else self.emails
        return [("Emails", emails)] + ([("Texts", self.texts)] if self.texts else [])


def reasons(skip_counts: dict[str, int]) -> list[tuple[Rule, int]]:
    """(rule, count) for every rule that skips someone, largest first."""
    return sorted(
        ((RULES_BY_CODE[code], n) for code, n in skip_counts.items() if n and code in RULES_BY_CODE),
        key=lambda pair: (-pair[1], pair[0].code),
    )


def preview_of(queryset: PatientQuerySet, *, now: datetime.datetime, plan: str = Plan.AUTO) -> Preview:
    """One scan: how many of `queryset` would be invited now (by which channel), how many
    skipped and why."""
    counted = tally(queryset, now=now, plan=plan)
    return Preview(
        considered=counted.considered, eligible=counted.eligible, reasons=reasons(counted.skip_counts),
        emails=counted.emails, texts=counted.texts or 0,
    )


@dataclass(frozen=True)
class Decision:
    """One patient under one plan: the channels to use (empty: not now) and why not."""

    channels: tuple[str, ...]
    reasons: list[Reason]

    @property
    def by_email(self) -> bool:
        return Channel.EMAIL in self.channels

    @property
    def by_text(self) -> bool:
        return Channel.TEXT in self.channels


def _decide(blocked: dict[str, bool], plan: str, *, texts_enabled: bool, for_resend: bool) -> Decision:
    """The channels and reasons that `blocked` (each rule's verdict) gives under `plan`."""
    rules = _rules(for_resend=for_resend)
    common = [rule.reason for rule in rules if rule.channel == "" and blocked.get(rule.code)]
    no_email = [rule.reason for rule in rules if rule.channel == Channel.EMAIL and blocked.get(rule.code)]
    no_text = [rule.reason for rule in rules if rule.channel == Channel.TEXT and blocked.get(rule.code)]
    if plan == Plan.EMAIL:
        wanted, why = [Channel.EMAIL], no_email
    elif plan == Plan.TEXT:
        wanted, why = [Channel.TEXT], no_text
    elif plan == Plan.BOTH:
        wanted, why = [Channel.EMAIL, Channel.TEXT], no_email + no_text
    else:  # AUTO, EACH: blocked only when no channel is left; texts count where the practice uses them
        usable = [c for c, no in ((Channel.EMAIL, no_email), (Channel.TEXT, no_text)) if not no]
        if plan == Plan.AUTO:
            usable = usable[:1]
        wanted, why = usable, ([] if usable else no_email + (no_text if texts_enabled else []))
    if common or why:
        return Decision((), common + why)
    return Decision(tuple(wanted), [])


def rule_verdicts(patient: Patient, *, now: datetime.datetime, for_resend: bool = False) -> tuple[dict[str, bool], Decision]:
    """Every rule's verdict on `patient` (True: it blocks, whatever the plan) and the decision
    under the front desk's default plan: what "Why no invite?" shows, check by check (one query)."""
    if patient.pk is None:
        raise ValueError("Save the patient before checking eligibility.")
    rules = _rules(for_resend=for_resend)
    flags = (
        Patient.objects.filter(pk=patient.pk)
        .annotate(**{
            _flag(rule.code): Case(When(rule.blocks(now), then=Value(True)), default=Value(False), output_field=BooleanField())
            for rule in rules
        })
        .values("practice__text_invitations_enabled", *[_flag(rule.code) for rule in rules])
        .first()
    )
    if flags is None:
        raise Patient.DoesNotExist(patient.pk)
    blocked = {rule.code: flags[_flag(rule.code)] for rule in rules}
    texts_enabled = flags["practice__text_invitations_enabled"]
    return blocked, _decide(blocked, Plan.AUTO, texts_enabled=texts_enabled, for_resend=for_resend)


def channels_for(
    patient: Patient, *, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO
) -> Decision:
    """The channels `patient` can be invited by now under `plan`, or every reason why not (one query)."""
    blocked, decision = rule_verdicts(patient, now=now, for_resend=for_resend)
    if plan == Plan.AUTO:
        return decision
    texts_enabled = not blocked.get("texts_disabled", False)
    return _decide(blocked, plan, texts_enabled=texts_enabled, for_resend=for_resend)


def reasons_for(patient: Patient, *, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO) -> list[Reason]:
    """Every reason `patient` cannot be invited now, in plain words. Empty means eligible."""
    return channels_for(patient, now=now, for_resend=for_resend, plan=plan).reasons


# -- a patient not saved yet (the add form's "Send portal invitation") ----------------------------

#: Where each rule's fix goes on the patient form (rules about the practice have no field).
RULE_FIELDS = {
    "missing_first_name": "first_name", "missing_last_name": "last_name", "missing_date_of_birth": "date_of_birth",
    "missing_zip_code": "zip_code", "missing_email": "email", "missing_birth_sex": "birth_sex",
    "invalid_email": "email", "no_consent": "email_consent", "opted_out": "email", "deceased": "deceased",
    "missing_mobile": "mobile_phone", "invalid_mobile": "mobile_phone", "no_sms_consent": "sms_consent",
    "sms_opted_out": "mobile_phone",
}
#: What the add form marks as needed for an invitation (the fields the rules above read).
NEEDED_FOR_INVITATION = ("first_name", "last_name", "date_of_birth", "zip_code", "email", "birth_sex", "email_consent")
#: ...and for one by text.
NEEDED_FOR_TEXT = ("mobile_phone", "sms_consent")


def decide_before_saving(patient: Patient, *, plan: str = Plan.AUTO) -> Decision:
    """The same rules as `channels_for`, for a patient about to be created: the rules that can
    only hold for a saved patient (registered, open or recent invitations, a bounce on file)
    cannot block a new one; the others read the same fields and tables. `tests/invitations/
    test_eligibility.py` checks the two agree."""
    practice = patient.practice
    email = (patient.email or "").strip()
    mobile = (patient.mobile_phone or "").strip()
    blocked = {
        "invitations_disabled": not practice.invitations_enabled,
        "activation_email_disabled": not practice.activation_email_enabled,
        "deceased": bool(patient.deceased),
        "missing_first_name": not patient.first_name,
        "missing_last_name": not patient.last_name,
        "missing_date_of_birth": patient.date_of_birth is None,
        "missing_zip_code": not patient.zip_code,
        "missing_email": not email,
        "missing_birth_sex": not patient.birth_sex,
        "invalid_email": bool(email) and not re.match(EMAIL_SHAPE, email),
        "no_consent": not patient.email_consent,
        "opted_out": bool(email) and EmailOptOut.objects.filter(practice_id=practice.pk, email=email).exists(),
        "texts_disabled": not practice.text_invitations_enabled,
        "missing_mobile": not mobile,
        "invalid_mobile": bool(mobile) and not re.match(E164_SHAPE, mobile),
        "no_sms_consent": not patient.sms_consent,
        "sms_opted_out": bool(mobile) and SmsOptOut.objects.filter(practice_id=practice.pk, phone=mobile).exists(),
    }
    return _decide(blocked, plan, texts_enabled=practice.text_invitations_enabled, for_resend=False)


def reasons_before_saving(patient: Patient, *, plan: str = Plan.AUTO) -> list[Reason]:
    return decide_before_saving(patient, plan=plan).reasons


def reasons_text(reasons: list[Reason]) -> str:
    return " ".join(reason.message for reason in reasons)
