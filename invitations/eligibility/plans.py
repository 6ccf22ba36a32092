"""Plans (which channels an invitation may use) and decisions: the same rule conditions for one
patient (`channels_for`, `reasons_for`: one query, every reason) and for a whole practice
(`eligible`, `tally`, `preview_of`)."""

import datetime
from dataclasses import dataclass, field

from django.db import models
from django.db.models import BooleanField, Case, Count, Q, Value, When

from patients.models import BulkChannels, Patient, PatientQuerySet

from invitations.eligibility.rules import RULES, RULES_BY_CODE, Reason, Rule
from invitations.models import Channel
from invitations.vocabulary import SendBy


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


def _rules(*, for_resend: bool, rules: tuple[Rule, ...] = RULES) -> list[Rule]:
    return [rule for rule in rules if not (for_resend and rule.resend_ignores)]


def _flag(code: str) -> str:
    return f"blocked_{code}"


def _blocked_by(channel: str, *, now: datetime.datetime, for_resend: bool, rules: tuple[Rule, ...] = RULES) -> Q:
    """True when a rule of `channel` ("" for the whole invitation) blocks the row."""
    condition = Q(pk__in=[])
    for rule in _rules(for_resend=for_resend, rules=rules):
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
    """The patient's own rules under `plan`, as conditions on patient rows."""
    return conditions_of(RULES, plan, now=now, for_resend=for_resend)


def conditions_of(rules: tuple[Rule, ...], plan: str, *, now: datetime.datetime, for_resend: bool = False) -> Conditions:
    """`rules` (a patient's own, or a representative's) under `plan`, as conditions on their rows."""
    common = _blocked_by("", now=now, for_resend=for_resend, rules=rules)
    no_email = _blocked_by(Channel.EMAIL, now=now, for_resend=for_resend, rules=rules)
    no_text = _blocked_by(Channel.TEXT, now=now, for_resend=for_resend, rules=rules)
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
    many skipped and why. A bulk run also invites the parents and guardians of children too young
    for their own account (`representatives`): then `considered` counts the invitations looked at
    (each patient's own, each parent's or guardian's, one for each child with none to send)."""

    considered: int
    eligible: int
    #: (rule, count) for every rule that skips someone, largest first.
    reasons: list[tuple[Rule, int]] = field(default_factory=list)
    #: Of the eligible, how many get an email and how many a text (both, under "each"); with
    #: `representatives`, their emails and texts too.
    emails: "int | None" = None
    texts: int = 0
    #: Invitations to children's parents or guardians ("via a parent or guardian").
    representatives: int = 0

    @property
    def skipped(self) -> int:
        return self.considered - self.eligible - self.representatives

    @property
    def skip_counts(self) -> dict[str, int]:
        return {rule.code: count for rule, count in self.reasons}

    @property
    def messages(self) -> list[tuple[str, int]]:
        """("Emails", n), ("Texts", n): what the run would send, per channel."""
        emails = self.eligible if self.emails is None else self.emails
        return [("Emails", emails)] + ([("Texts", self.texts)] if self.texts else [])


def reasons(skip_counts: dict[str, int], *, rules_by_code: "dict[str, Rule] | None" = None) -> list[tuple[Rule, int]]:
    """(rule, count) for every rule that skips someone, largest first (`rules_by_code`: the
    patient's own rules unless given; `eligibility.reasons` knows every rule)."""
    known = RULES_BY_CODE if rules_by_code is None else rules_by_code
    return sorted(
        ((known[code], n) for code, n in skip_counts.items() if n and code in known),
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


def _decide(
    blocked: dict[str, bool], plan: str, *, texts_enabled: bool, for_resend: bool, rules: tuple[Rule, ...] = RULES,
) -> Decision:
    """The channels and reasons that `blocked` (each rule's verdict) gives under `plan`."""
    rules = _rules(for_resend=for_resend, rules=rules)
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


def reasons_text(reasons: list[Reason]) -> str:
    return " ".join(reason.message for reason in reasons)
