"""Practices (the tenant: one office each), their staff memberships and roles, and the age bands of
family access each practice sets."""

import datetime
import zoneinfo
from typing import Optional

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.core.exceptions import ValidationError
from django.db import models

from core import languages
from core.phones import InvalidPhoneNumber, normalise_phone

#: Countries whose phone numbers the practice's staff type without a country code (ISO 3166).
COUNTRY_CHOICES = [("US", "United States"), ("CA", "Canada"), ("GB", "United Kingdom"), ("AU", "Australia"),
                   ("NZ", "New Zealand"), ("IE", "Ireland")]
class PhoneReadInPracticeCountry:
    """A model whose phone number staff type in local form (`phone_field`): `clean_fields` reads it
    into international form in the practice's country before the field checks (a valid number typed
    with spaces and brackets may be longer than the stored form), and a number that cannot be read is
    an error on its field, reported with the others."""

    phone_field = ""

    def clean_fields(self, exclude=None) -> None:
        errors = {}
        typed = getattr(self, self.phone_field)
        if typed and self.phone_field not in (exclude or ()):
            region = self.practice.country if self.practice_id else "US"
            try:
                setattr(self, self.phone_field, normalise_phone(typed, region))
            except InvalidPhoneNumber as exc:
                errors[self.phone_field] = [str(exc)]
        try:
            super().clean_fields(exclude=[*(exclude or ()), *errors])
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]



#: The range staff may set the age bands in (the eligibility rules are written for every value in it).
MIN_OWN_ACCOUNT_AGE, MAX_OWN_ACCOUNT_AGE = 10, 17
MIN_ADULT_AGE, MAX_ADULT_AGE = 18, 21


class AgeBand(models.TextChoices):
    CHILD = "child", "Child (no own account)"
    TEEN = "teen", "Teenager"
    ADULT = "adult", "Adult"


def years_between(born: datetime.date, today: datetime.date) -> int:
    """Whole years of age on `today` (someone born on 29 February turns a year older on 1 March)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def birthday_cutoff(today: datetime.date, years: int) -> datetime.date:
    """The latest date of birth of someone at least `years` old on `today`."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February in a year that has none: born on 1 March turns `years` today
        return today.replace(year=today.year - years, day=28)


class BulkChannels(models.TextChoices):
    """How Activate Now and the monthly re-invite reach a practice's patients."""

    EMAIL = "email", "Email only"
    EMAIL_THEN_TEXT = "email_then_text", "Email; a text to patients without a usable email"
    BOTH = "both", "Email and text, each where it can be used"


class Practice(models.Model):
    """One office. Every row a staff user can see hangs off a practice."""

    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="America/New_York", choices=_time_zone_choices)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)
    country = models.CharField(
        max_length=2, choices=COUNTRY_CHOICES, default="US", db_default="US",
        help_text="Phone numbers typed without a country code are read as this country's.",
    )
    logo = models.ImageField(upload_to="practice-logos/", blank=True)

    # Portal switches (the "Patient Activation" solution of the source products).
    invitations_enabled = models.BooleanField(
        "patient portal invitations enabled",
        default=True,
        help_text="Off: no portal invitation of any kind is sent for this practice.",
    )
    activation_email_enabled = models.BooleanField(
        "activation email enabled",
        default=True,
        help_text="Off: invitation emails are not sent (the switch on the portal access page).",
    )
    text_invitations_enabled = models.BooleanField(
        "invitation texts enabled",
        default=False, db_default=False,
        help_text="On: invitations may also go by text message to patients who consented to texts.",
    )
    bulk_channels = models.CharField(
        "Activate Now and monthly re-invite send by",
        max_length=20, choices=BulkChannels.choices, default=BulkChannels.EMAIL, db_default=BulkChannels.EMAIL,
        help_text="Texts go only while invitation texts are enabled.",
    )
    link_lifetime_days = models.PositiveSmallIntegerField(
        "invitation link lifetime (days)",
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(30)],
    )
    self_signup_enabled = models.BooleanField(
        "patients may request portal access",
        default=False,
        help_text="Opens a public 'Request portal access' page for this practice.",
    )
    default_language = models.CharField(
        "the practice's language", max_length=10, choices=languages.choices,
        default=languages.DEFAULT_LANGUAGE, db_default=languages.DEFAULT_LANGUAGE,
        help_text="Patients whose language has no invitation email or text written yet get this language's.",
    )
    language_assistance_notice = models.BooleanField(
        "notice of free language help in emails", default=False, db_default=False,
        help_text="Adds a short notice that language help is free, with taglines in the common languages, "
        "to the invitation email's footer (Section 1557 of the ACA).",
    )
    language_assistance_text = models.TextField(
        "language help notice", blank=True, default="", db_default="",
        help_text="Plain text, one line per language. Empty: the default notice with the practice's phone number.",
    )
    monthly_reinvite_enabled = models.BooleanField("monthly re-invite", default=False)
    monthly_reinvite_day = models.PositiveSmallIntegerField(
        "monthly re-invite day of the month",
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(28)],
    )
    monthly_reinvite_cap = models.PositiveSmallIntegerField(
        "stop after this many unanswered invitations in a row",
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(12)],
    )

    # Staff sign-in (patients/staff_auth).
    require_two_factor = models.BooleanField(
        "require two-factor sign-in",
        default=False, db_default=False,
        help_text=(
            "On: this practice's team confirm every sign-in with a code from an authenticator app, and "
            "enrol one at their next sign-in. Superusers always do."
        ),
    )
    staff_idle_minutes = models.PositiveSmallIntegerField(
        "sign staff out after this many idle minutes",
        default=30, db_default=30,
        validators=[MinValueValidator(5), MaxValueValidator(480)],
        help_text="Someone in several practices is signed out after the shortest of their practices' times.",
    )

    # Family and caregiver access (patients/representatives.py): the age bands are the practice's
    # because state laws differ.
    family_access_enabled = models.BooleanField(
        "family and caregiver access",
        default=True, db_default=True,
        help_text="On: parents, guardians and caregivers can be invited to act for patients, and children "
        "under the own-account age are invited only through them.",
    )
    own_account_age = models.PositiveSmallIntegerField(
        "own portal account from age",
        default=12, db_default=12,
        validators=[MinValueValidator(MIN_OWN_ACCOUNT_AGE), MaxValueValidator(MAX_OWN_ACCOUNT_AGE)],
        help_text="Younger children get no account of their own: their parents or guardians are invited. "
        "From this age a patient may have an own account, and parents get limited access unless staff record why full.",
    )
    adult_age = models.PositiveSmallIntegerField(
        "age of majority",
        default=18, db_default=18,
        validators=[MinValueValidator(MIN_ADULT_AGE), MaxValueValidator(MAX_ADULT_AGE)],
        help_text="Parents' access ends on this birthday and the patient is invited to their own account; "
        "adults' representatives need the patient's consent.",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def link_lifetime(self) -> datetime.timedelta:
        """How long an invitation link works: the one place the setting becomes a duration."""
        return datetime.timedelta(days=self.link_lifetime_days)

    def link_expires_at(self, now: datetime.datetime) -> datetime.datetime:
        """When a link made now stops working (single invites, bulk runs and previews alike)."""
        return now + self.link_lifetime

    def today(self, now: datetime.datetime) -> datetime.date:
        """The date at the practice (birthdays turn over at the practice's midnight)."""
        return now.astimezone(zoneinfo.ZoneInfo(self.time_zone)).date()

    def age_band(self, date_of_birth: Optional[datetime.date], today: datetime.date) -> str:
        """"child" (no own account), "teen" (own account possible, parents limited) or "adult"; ""
        when the date of birth is unknown or family access is off (then everyone is treated as today:
        an own account, no representatives)."""
        if date_of_birth is None or not self.family_access_enabled:
            return ""
        age = years_between(date_of_birth, today)
        if age < self.own_account_age:
            return AgeBand.CHILD
        return AgeBand.TEEN if age < self.adult_age else AgeBand.ADULT


class Role(models.TextChoices):
    ADMIN = "admin", "Practice admin"
    MANAGER = "manager", "Manager"
    FRONT_DESK = "front_desk", "Front desk"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    """A staff user's place in one practice. A user may belong to several practices."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.FRONT_DESK)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "practice"],
                name="membership_unique_user_practice",
                violation_error_message="This user is already a member of this practice.",
            )
        ]
        ordering = ["practice__name", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} at {self.practice} ({self.get_role_display()})"
