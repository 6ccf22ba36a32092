"""Why a patient cannot be invited now: every rule in one place.

Each rule is a database condition that is true when it *blocks* an invitation. The same
conditions serve one patient (`reasons_for`: one query, every reason) and a whole practice
(`annotate_blocks`, `eligible`, `tally` for Activate Now's preview and the monthly run),
so the single invite, the new-patient checkbox, resend and bulk runs can never disagree.
"""

import datetime
import re
from dataclasses import dataclass, field
from typing import Callable

from django.db.models import BooleanField, Case, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.expressions import Expression

from patients.models import EmailOptOut, Patient, PatientQuerySet

from .models import OPEN_STATUSES, Invitation

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


def _missing(field: str) -> Callable[[datetime.datetime], Q]:
    if field == "date_of_birth":
        return lambda now: Q(date_of_birth__isnull=True)
    return lambda now: Q(**{field: ""})


RULES: tuple[Rule, ...] = (
    Rule("invitations_disabled", "Portal invitations are turned off for this practice (practice settings).",
         lambda now: Q(practice__invitations_enabled=False)),
    Rule("activation_email_disabled", "The activation email is turned off for this practice (practice settings).",
         lambda now: Q(practice__activation_email_enabled=False)),
    Rule("registered", "Already registered: the patient has a portal account.",
         lambda now: Q(portal_user__isnull=False)),
    Rule("deceased", "The patient is marked deceased.", lambda now: Q(deceased=True)),
    Rule("missing_first_name", "First name is missing.", _missing("first_name")),
    Rule("missing_last_name", "Last name is missing.", _missing("last_name")),
    Rule("missing_date_of_birth", "Date of birth is missing.", _missing("date_of_birth")),
    Rule("missing_zip_code", "ZIP code is missing.", _missing("zip_code")),
    Rule("missing_email", "Email address is missing.", _missing("email")),
    Rule("missing_birth_sex", "Birth sex is missing.", _missing("birth_sex")),
    Rule("invalid_email", "The email address is not valid; check it for typos.",
         lambda now: _has_email() & ~Q(email__regex=EMAIL_SHAPE)),
    Rule("no_consent", "The patient has not consented to email.", lambda now: Q(email_consent=False)),
    Rule("opted_out", "The email address is on the practice's opt-out list.",
         lambda now: _has_email() & Q(_opted_out(now))),
    Rule("hard_bounce", "Email to this address bounced permanently; correct the address.",
         lambda now: _has_email() & Q(bounced_email=F("email"))),
    Rule("open_invitation", "The patient already has a valid invitation; use Resend to send a new link.",
         lambda now: Q(_open_invitation(now)), resend_ignores=True),
    Rule("invited_recently", "An invitation went to this address less than an hour ago; try again later.",
         lambda now: _has_email() & Q(_invited_recently(now))),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}


def _rules(*, for_resend: bool) -> list[Rule]:
    return [rule for rule in RULES if not (for_resend and rule.resend_ignores)]


def _flag(code: str) -> str:
    return f"blocked_{code}"


def annotate_blocks(queryset: PatientQuerySet, *, now: datetime.datetime, for_resend: bool = False) -> PatientQuerySet:
    """Add one boolean column per rule, `blocked_<code>`, true when the rule blocks the row."""
    return queryset.annotate(
        **{
            _flag(rule.code): Case(When(rule.blocks(now), then=Value(True)), default=Value(False), output_field=BooleanField())
            for rule in _rules(for_resend=for_resend)
        }
    )


def blocking_condition(*, now: datetime.datetime, for_resend: bool = False) -> Q:
    """True for a patient that any rule blocks."""
    condition = Q(pk__in=[])
    for rule in _rules(for_resend=for_resend):
        condition |= Q(rule.blocks(now))
    return condition


def eligible(queryset: PatientQuerySet, *, now: datetime.datetime, for_resend: bool = False) -> PatientQuerySet:
    """The patients of `queryset` that can be invited now (for bulk runs)."""
    return queryset.exclude(blocking_condition(now=now, for_resend=for_resend))


@dataclass(frozen=True)
class Tally:
    considered: int
    #: None when not asked for (a bulk run's planner counts the ids it lists instead).
    eligible: "int | None"
    #: How many patients each rule blocks (a patient blocked twice counts under both).
    skip_counts: dict[str, int]


def tally(queryset: PatientQuerySet, *, now: datetime.datetime, with_eligible: bool = True, for_resend: bool = False) -> Tally:
    """One scan of `queryset`: how many patients, how many no rule blocks, how many each rule
    blocks (Activate Now's preview, the dashboard's "not eligible" figures, a run's summary)."""
    rules = _rules(for_resend=for_resend)
    counts = queryset.aggregate(
        considered=Count("pk"),
        **({"eligible": Count("pk", filter=~blocking_condition(now=now, for_resend=for_resend))} if with_eligible else {}),
        **{f"rule_{rule.code}": Count("pk", filter=Q(rule.blocks(now))) for rule in rules},
    )
    return Tally(
        considered=counts["considered"],
        eligible=counts.get("eligible"),
        skip_counts={rule.code: counts[f"rule_{rule.code}"] for rule in rules},
    )


#: Reasons that describe a patient who is waiting on an invitation, not one who cannot get one.
NOT_A_SKIP_FOR_DASHBOARD = {"registered", "open_invitation", "invited_recently"}


@dataclass
class Preview:
    """What inviting a set of patients would do: how many are invited, how many skipped and why."""

    considered: int
    eligible: int
    #: (rule, count) for every rule that skips someone, largest first.
    reasons: list[tuple[Rule, int]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.considered - self.eligible

    @property
    def skip_counts(self) -> dict[str, int]:
        return {rule.code: count for rule, count in self.reasons}


def reasons(skip_counts: dict[str, int]) -> list[tuple[Rule, int]]:
    """(rule, count) for every rule that skips someone, largest first."""
    return sorted(
        ((RULES_BY_CODE[code], n) for code, n in skip_counts.items() if n and code in RULES_BY_CODE),
        key=lambda pair: (-pair[1], pair[0].code),
    )


def preview_of(queryset: PatientQuerySet, *, now: datetime.datetime) -> Preview:
    """One scan: how many of `queryset` would be invited now, how many skipped and why."""
    counted = tally(queryset, now=now)
    return Preview(considered=counted.considered, eligible=counted.eligible, reasons=reasons(counted.skip_counts))


def reasons_for(patient: Patient, *, now: datetime.datetime, for_resend: bool = False) -> list[Reason]:
    """Every reason `patient` cannot be invited now, in plain words. Empty means eligible."""
    if patient.pk is None:
        raise ValueError("Save the patient before checking eligibility.")
    flags = (
        annotate_blocks(Patient.objects.filter(pk=patient.pk), now=now, for_resend=for_resend)
        .values(*[_flag(rule.code) for rule in _rules(for_resend=for_resend)])
        .first()
    )
    if flags is None:
        raise Patient.DoesNotExist(patient.pk)
    return [rule.reason for rule in _rules(for_resend=for_resend) if flags[_flag(rule.code)]]


# -- a patient not saved yet (the add form's "Send portal invitation") ----------------------------

#: Where each rule's fix goes on the patient form (rules about the practice have no field).
RULE_FIELDS = {
    "missing_first_name": "first_name", "missing_last_name": "last_name", "missing_date_of_birth": "date_of_birth",
    "missing_zip_code": "zip_code", "missing_email": "email", "missing_birth_sex": "birth_sex",
    "invalid_email": "email", "no_consent": "email_consent", "opted_out": "email", "deceased": "deceased",
}
#: What the add form marks as needed for an invitation (the fields the rules above read).
NEEDED_FOR_INVITATION = ("first_name", "last_name", "date_of_birth", "zip_code", "email", "birth_sex", "email_consent")


def reasons_before_saving(patient: Patient) -> list[Reason]:
    """The same rules as `reasons_for`, for a patient about to be created: the rules that can only
    hold for a saved patient (registered, open or recent invitations, a bounce on file) cannot
    block a new one; the others read the same fields and tables. `tests/invitations/
    test_eligibility.py` checks the two agree."""
    practice = patient.practice
    email = (patient.email or "").strip()
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
    }
    return [rule.reason for rule in RULES if blocked.get(rule.code)]


def reasons_text(reasons: list[Reason]) -> str:
    return " ".join(reason.message for reason in reasons)
