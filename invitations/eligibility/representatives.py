"""The rules of an invitation to a representative (a parent, guardian or caregiver who acts for a
patient): conditions on `RepresentativeAccess` rows, true when they block, with the same plans and
decisions as a patient's own invitation. The invitation goes to the representative's address or
number; they confirm the patient's last name and date of birth, so the chart must hold both.

Bulk runs (Activate Now, the monthly re-invite) invite a child too young for their own account
through their parents and guardians (`guardians_to_invite`): each access still waiting for its
representative to link. `tally_bulk` counts a run's patients, those accesses and the children with
nobody to invite (`CHILD_NO_REPRESENTATIVE`, or every parent already linked) in the same units:
invitations looked at, sent, skipped and why.
"""

import datetime

from dataclasses import dataclass

from django.db.models import BooleanField, Case, Count, Exists, OuterRef, Q, Value, When

from patients.models import E164_SHAPE, EmailOptOut, SmsOptOut
from patients.models.representatives import LIVE_STATUSES, AccessStatus, Relationship, RepresentativeAccess

from invitations.eligibility.plans import Decision, Plan, Preview, Tally, _decide, conditions_of, reasons, tally
from invitations.eligibility.rules import EMAIL_SHAPE, RECENT_INVITATION_WINDOW, RULES_BY_CODE, Reason, Rule, younger_than
from invitations.models import OPEN_STATUSES, Channel, Invitation


def _rep(field: str) -> str:
    return f"representative__{field}"


def _opted_out(now):
    return Exists(EmailOptOut.objects.filter(practice_id=OuterRef("practice_id"), email=OuterRef(_rep("email"))))


def _sms_opted_out(now):
    return Exists(SmsOptOut.objects.filter(practice_id=OuterRef("practice_id"), phone=OuterRef(_rep("mobile_phone"))))


def _open_invitation(now):
    return Exists(Invitation.objects.usable(now).filter(access_id=OuterRef("pk")))


def _sent_recently(**to):
    def blocks(now):
        return Exists(Invitation.objects.filter(
            access_id=OuterRef("pk"), created_at__gt=now - RECENT_INVITATION_WINDOW, status__in=list(OPEN_STATUSES), **to,
        ))
    return blocks


def _adult_without_consent(now):
    """An adult patient's representative needs the patient's consent: recorded by staff, given by
    the patient from their portal, or a court-appointed guardian's order."""
    adult = Q(patient__date_of_birth__isnull=False) & ~younger_than("adult_age", now, via="patient__")
    return adult & Q(patient_consent="", granted_by_patient=False) & ~Q(relationship=Relationship.COURT_GUARDIAN)


REPRESENTATIVE_RULES: tuple[Rule, ...] = (
    Rule("invitations_disabled", "Portal invitations are turned off for this practice (practice settings).",
         lambda now: Q(practice__invitations_enabled=False)),
    Rule("family_access_disabled", "Family and caregiver access is turned off for this practice (practice settings).",
         lambda now: Q(practice__family_access_enabled=False)),
    Rule("representative_linked", "Already linked: the representative signs in with their own login.",
         lambda now: Q(status=AccessStatus.ACTIVE)),
    Rule("access_ended", "This access has ended or was revoked: grant it again to invite the representative.",
         lambda now: Q(status__in=[AccessStatus.ENDED, AccessStatus.REVOKED])),
    Rule("patient_deceased", "The patient is marked deceased.", lambda now: Q(patient__deceased=True)),
    Rule("patient_missing_last_name", "The patient's last name is missing (the representative confirms it).",
         lambda now: Q(patient__last_name="")),
    Rule("patient_missing_date_of_birth", "The patient's date of birth is missing (the representative confirms it).",
         lambda now: Q(patient__date_of_birth__isnull=True)),
    Rule("adult_without_consent", "The patient is an adult: record their consent to this representative first "
         "(or the court order of a court-appointed guardian).", _adult_without_consent),
    Rule("activation_email_disabled", "The activation email is turned off for this practice (practice settings).",
         lambda now: Q(practice__activation_email_enabled=False), channel=Channel.EMAIL),
    Rule("representative_missing_email", "The representative has no email address.",
         lambda now: Q(**{_rep("email"): ""}), channel=Channel.EMAIL),
    Rule("representative_invalid_email", "The representative's email address is not valid; check it for typos.",
         lambda now: ~Q(**{_rep("email"): ""}) & ~Q(**{f"{_rep('email')}__regex": EMAIL_SHAPE}), channel=Channel.EMAIL),
    Rule("representative_opted_out", "The representative's email address is on the practice's opt-out list.",
         lambda now: ~Q(**{_rep("email"): ""}) & Q(_opted_out(now)), channel=Channel.EMAIL),
    Rule("representative_open_invitation", "The representative already has a valid invitation; use Resend to send a new link.",
         lambda now: Q(_open_invitation(now)), resend_ignores=True),
    Rule("representative_invited_recently", "An invitation went to the representative less than an hour ago; try again later.",
         _sent_recently(by_email=True), channel=Channel.EMAIL),
    Rule("texts_disabled", "Invitation texts are turned off for this practice (practice settings).",
         lambda now: Q(practice__text_invitations_enabled=False), channel=Channel.TEXT),
    Rule("representative_missing_mobile", "The representative has no mobile number.",
         lambda now: Q(**{_rep("mobile_phone"): ""}), channel=Channel.TEXT),
    Rule("representative_invalid_mobile", "The representative's mobile number is not valid in international form.",
         lambda now: ~Q(**{_rep("mobile_phone"): ""}) & ~Q(**{f"{_rep('mobile_phone')}__regex": E164_SHAPE}),
         channel=Channel.TEXT),
    Rule("representative_no_sms_consent", "The representative has not consented to text messages.",
         lambda now: Q(**{_rep("sms_consent"): False}), channel=Channel.TEXT),
    Rule("representative_sms_opted_out", "The representative's mobile number is on the practice's text opt-out list.",
         lambda now: ~Q(**{_rep("mobile_phone"): ""}) & Q(_sms_opted_out(now)), channel=Channel.TEXT),
    Rule("representative_texted_recently", "A text went to the representative less than an hour ago; try again later.",
         _sent_recently(by_text=True), channel=Channel.TEXT),
)
#: The rules a representative's invitation shares with a patient's own keep one code and wording.
REPRESENTATIVE_RULES_BY_CODE = {rule.code: rule for rule in REPRESENTATIVE_RULES}


def _flag(code: str) -> str:
    return f"blocked_{code}"


def representative_verdicts(access: RepresentativeAccess, *, now: datetime.datetime, for_resend: bool = False) -> dict[str, bool]:
    """Every rule's verdict on one access (True: it blocks), in one query."""
    rules = [rule for rule in REPRESENTATIVE_RULES if not (for_resend and rule.resend_ignores)]
    flags = (
        RepresentativeAccess.objects.filter(pk=access.pk)
        .annotate(**{
            _flag(rule.code): Case(When(rule.blocks(now), then=Value(True)), default=Value(False), output_field=BooleanField())
            for rule in rules
        })
        .values(*[_flag(rule.code) for rule in rules])
        .first()
    )
    if flags is None:
        raise RepresentativeAccess.DoesNotExist(access.pk)
    return {rule.code: flags[_flag(rule.code)] for rule in rules}


def representative_channels_for(
    access: RepresentativeAccess, *, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO
) -> Decision:
    """The channels a representative can be invited by now under `plan`, or every reason why not."""
    blocked = representative_verdicts(access, now=now, for_resend=for_resend)
    return _decide(
        blocked, plan, texts_enabled=not blocked.get("texts_disabled", False), for_resend=for_resend,
        rules=REPRESENTATIVE_RULES,
    )


def representative_reasons_for(access, *, now: datetime.datetime, for_resend: bool = False, plan: str = Plan.AUTO) -> list[Reason]:
    return representative_channels_for(access, now=now, for_resend=for_resend, plan=plan).reasons


def eligible_representatives(queryset, *, now: datetime.datetime, plan: str = Plan.AUTO):
    """The accesses of `queryset` whose representative can be invited now (bulk runs), annotated
    with ``gets_email`` and ``gets_text`` as `eligibility.eligible` annotates patients."""
    plan_conditions = conditions_of(REPRESENTATIVE_RULES, plan, now=now)
    return queryset.exclude(plan_conditions.blocked).annotate(
        gets_email=Case(When(plan_conditions.email, then=Value(True)), default=Value(False), output_field=BooleanField()),
        gets_text=Case(When(plan_conditions.text, then=Value(True)), default=Value(False), output_field=BooleanField()),
    )


def tally_representatives(queryset, *, now: datetime.datetime, plan: str = Plan.AUTO) -> Tally:
    """How many of the accesses in `queryset` would be invited now, by which channel, and how many
    each rule blocks (Activate Now's preview of invitations "via a parent or guardian")."""
    plan_conditions = conditions_of(REPRESENTATIVE_RULES, plan, now=now)
    invited = ~plan_conditions.blocked
    rules = [rule for rule in REPRESENTATIVE_RULES if rule.channel != Channel.TEXT or plan != Plan.EMAIL]
    counts = queryset.aggregate(
        considered=Count("pk"),
        eligible=Count("pk", filter=invited),
        emails=Count("pk", filter=invited & plan_conditions.email),
        texts=Count("pk", filter=invited & plan_conditions.text),
        **{f"rule_{rule.code}": Count("pk", filter=Q(rule.blocks(now)) & plan_conditions.blocked) for rule in rules},
    )
    return Tally(
        considered=counts["considered"], eligible=counts["eligible"],
        skip_counts={rule.code: counts[f"rule_{rule.code}"] for rule in rules},
        emails=counts["emails"], texts=counts["texts"],
    )


# -- bulk runs: children too young for their own account, through their parents and guardians --------

#: Whom a bulk run invites for such a child (a caregiver is invited from the child's page).
BULK_RELATIONSHIPS = (Relationship.PARENT, Relationship.COURT_GUARDIAN)


def too_young(now: datetime.datetime) -> Q:
    """Patient rows of children too young for their own account (`child_no_own_account`'s condition)."""
    return younger_than("own_account_age", now)


def _guardians(**fields):
    return RepresentativeAccess.objects.filter(patient_id=OuterRef("pk"), relationship__in=BULK_RELATIONSHIPS, **fields)


#: A skip of a bulk run (a condition on patient rows, like a rule of the patient's own): a child
#: who gets no own invitation and has nobody on file to invite instead.
CHILD_NO_REPRESENTATIVE = Rule(
    "child_no_representative",
    "A child too young for their own account with no parent or guardian on file: add one on the child's page "
    "(Representatives) to invite them.",
    lambda now: too_young(now) & ~Exists(_guardians(status__in=list(LIVE_STATUSES))),
)


def _all_linked(now: datetime.datetime) -> Q:
    """A child whose parents and guardians on file have all linked their login: nobody to invite."""
    return too_young(now) & Exists(_guardians(status=AccessStatus.ACTIVE)) & ~Exists(_guardians(status=AccessStatus.INVITED))


def guardians_to_invite(children):
    """The accesses a bulk run invites for `children` (patient rows too young for their own account):
    each parent's or guardian's still waiting for the representative to link."""
    return RepresentativeAccess.objects.filter(
        patient__in=children.values("pk"), status=AccessStatus.INVITED, relationship__in=BULK_RELATIONSHIPS,
    )


@dataclass(frozen=True)
class BulkTally:
    """A bulk run's counts, in invitations: each patient's own, each parent's or guardian's, and one
    for each child with nobody to invite (skipped)."""

    considered: int
    #: Patients' own invitations and parents' or guardians' (None when not asked for).
    eligible: "int | None"
    representatives: "int | None"
    skip_counts: dict[str, int]
    emails: "int | None" = None
    texts: "int | None" = None

    def preview(self) -> Preview:
        return Preview(
            considered=self.considered, eligible=self.eligible or 0, representatives=self.representatives or 0,
            reasons=reasons(self.skip_counts, rules_by_code=BULK_RULES_BY_CODE), emails=self.emails, texts=self.texts or 0,
        )


def tally_bulk(
    patients, *, now: datetime.datetime, plan: str, accesses=None, children=None, with_eligible: bool = True,
    for_resend: bool = False,
) -> BulkTally:
    """What a bulk run would do (three scans at most): `patients` by their own rules, `accesses` (a
    run's parents and guardians, `guardians_to_invite`) by a representative's, and, when `children`
    is given (the run's children too young for their own account, who are then left out of
    `patients`' counts), the children with nobody to invite: none on file, or all linked already.
    Skip counts of shared codes add up (a practice's switch turned off counts every invitation it stops)."""
    own = tally(patients if children is None else patients.exclude(too_young(now)), now=now, plan=plan,
                with_eligible=with_eligible, for_resend=for_resend)
    skip_counts, considered = dict(own.skip_counts), own.considered
    eligible, emails, texts = own.eligible, own.emails, own.texts
    if children is not None:
        kids = children.aggregate(
            nobody=Count("pk", filter=Q(CHILD_NO_REPRESENTATIVE.blocks(now))),
            linked=Count("pk", filter=_all_linked(now)),
        )
        skip_counts[CHILD_NO_REPRESENTATIVE.code] = kids["nobody"]
        skip_counts["representative_linked"] = skip_counts.get("representative_linked", 0) + kids["linked"]
        considered += kids["nobody"] + kids["linked"]
    representatives = 0 if with_eligible else None
    if accesses is not None:
        theirs = tally_representatives(accesses, now=now, plan=plan)
        for code, n in theirs.skip_counts.items():
            skip_counts[code] = skip_counts.get(code, 0) + n
        considered += theirs.considered
        if with_eligible:
            representatives = theirs.eligible
            emails, texts = (emails or 0) + theirs.emails, (texts or 0) + theirs.texts
    return BulkTally(
        considered=considered, eligible=eligible, representatives=representatives, skip_counts=skip_counts,
        emails=emails, texts=texts,
    )


#: Every reason a bulk run names: a representative's rules, the patient's own (whose wording wins for
#: a shared code), and the child's.
BULK_RULES_BY_CODE: dict[str, Rule] = {
    **REPRESENTATIVE_RULES_BY_CODE, **RULES_BY_CODE, CHILD_NO_REPRESENTATIVE.code: CHILD_NO_REPRESENTATIVE,
}
