"""The rules of a patient's own invitation, each a database condition on patient rows that is true
when it blocks (see `invitations.eligibility`)."""

import datetime
from dataclasses import dataclass
from typing import Callable

from django.db.models import Exists, F, OuterRef, Q
from django.db.models.expressions import Expression

from patients.models import (
    E164_SHAPE, MAX_ADULT_AGE, MAX_OWN_ACCOUNT_AGE, MIN_ADULT_AGE, MIN_OWN_ACCOUNT_AGE, EmailOptOut, SmsOptOut,
    birthday_cutoff,
)
from patients.models.representatives import RepresentativeAccess

from invitations.models import OPEN_STATUSES, Channel, Invitation

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
        Invitation.objects.own().filter(
            patient_id=OuterRef("pk"), email=OuterRef("email"), created_at__gt=now - RECENT_INVITATION_WINDOW,
            status__in=list(OPEN_STATUSES),
        )
    )


def _open_invitation(now):
    return Exists(Invitation.objects.usable(now).own().filter(patient_id=OuterRef("pk")))


def _has_mobile() -> Q:
    return ~Q(mobile_phone="")


def _texted_recently(now):
    return Exists(
        Invitation.objects.own().filter(
            patient_id=OuterRef("pk"), text_to=OuterRef("mobile_phone"), by_text=True,
            created_at__gt=now - RECENT_INVITATION_WINDOW, status__in=list(OPEN_STATUSES),
        )
    )


def _sms_opted_out(now):
    return Exists(SmsOptOut.objects.filter(practice_id=OuterRef("practice_id"), phone=OuterRef("mobile_phone")))


#: The range each age band may be set in (`Practice.own_account_age`, `Practice.adult_age`).
AGE_RANGES = {"own_account_age": (MIN_OWN_ACCOUNT_AGE, MAX_OWN_ACCOUNT_AGE), "adult_age": (MIN_ADULT_AGE, MAX_ADULT_AGE)}


def younger_than(band: str, now: datetime.datetime, *, via: str = "") -> Q:
    """Patient rows (or rows reaching the patient through `via`, e.g. "patient__") younger than
    their practice's `band` age ("own_account_age" or "adult_age") on `now`'s date, where the
    practice has family access on. The age is each practice's own, so the condition names every
    value the setting can take (a few terms the database evaluates per row; no date arithmetic in
    SQL, which SQLite and PostgreSQL write differently). Dates are UTC dates: the rule may read a
    birthday a few hours early or late; the daily job that ends parents' access uses each practice's
    own date (`Practice.today`)."""
    today = now.date()
    low, high = AGE_RANGES[band]
    younger = Q(pk__in=[])
    for years in range(low, high + 1):
        younger |= Q(**{f"{via}practice__{band}": years, f"{via}date_of_birth__gt": birthday_cutoff(today, years)})
    return Q(**{f"{via}practice__family_access_enabled": True, f"{via}date_of_birth__isnull": False}) & younger


def _representatives_contact(field: str) -> Callable[[datetime.datetime], Q]:
    """The chart's `field` (email or mobile) is one of the patient's representatives' (past or present):
    the patient's own invitation would reach the parent or caregiver, who would register *as* the
    patient (a teenager's confidentiality, a new adult's account staying with the parent)."""

    def blocks(now):
        theirs = RepresentativeAccess.objects.filter(patient_id=OuterRef("pk"), **{f"representative__{field}": OuterRef(field)})
        return ~Q(**{field: ""}) & Q(Exists(theirs))

    return blocks


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
    Rule("child_no_own_account", "A child under the practice's own-account age gets no portal account of their own: "
         "invite a parent or guardian instead (Representatives, on the patient's page).",
         lambda now: younger_than("own_account_age", now)),
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
    Rule("email_is_representatives", "The email address on the chart is a parent's, guardian's or caregiver's: the "
         "patient's own invitation goes only to their own address. Enter the patient's own email, or invite by text.",
         _representatives_contact("email"), channel=Channel.EMAIL),
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
    Rule("mobile_is_representatives", "The mobile number on the chart is a parent's, guardian's or caregiver's: the "
         "patient's own invitation goes only to their own number. Enter the patient's own mobile number.",
         _representatives_contact("mobile_phone"), channel=Channel.TEXT),
    Rule("texted_recently", "A text went to this number less than an hour ago; try again later.",
         lambda now: _has_mobile() & Q(_texted_recently(now)), channel=Channel.TEXT),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}
