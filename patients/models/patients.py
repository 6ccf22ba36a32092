"""Patients: the chart (names, date of birth, contact details, consent per channel, language), how the
front desk finds one (search keys kept in indexed columns) and how a typed date of birth is read."""

import datetime
import re
import unicodedata
from typing import Iterable, Optional

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from core import languages
from core.phones import national_digits

from patients.models.practices import PhoneReadInPracticeCountry, Practice

MAX_AGE_YEARS = 125
ZIP_CODE_VALIDATOR = RegexValidator(
    r"^\d{5}(-\d{4})?$", "Enter a 5-digit ZIP code or ZIP+4, for example 02139 or 02139-4307."
)


#: A stored mobile number: E.164 (imports and the shell are checked against it too).
E164_SHAPE = r"^\+[1-9][0-9]{6,14}$"


def normalise_email(address: Optional[str]) -> str:
    """Emails are stored trimmed and lower-cased so that every comparison is case-insensitive."""
    return (address or "").strip().lower()


# -- search keys: how a chart is found ------------------------------------------------------------
# A patient is found the way the front desk types: "garcia" finds García, "oconnor" O'Connor,
# "617-555-0187" the mobile +16175550187, "5" the chart 01-0000005. Each chart keeps these keys in
# indexed columns (`Patient.search_*`), written on every save and bulk insert, so a search is a
# few prefix lookups in indexes whatever the database (the admin's search: patients.admin.patients).

#: Characters that separate the words of a name ("Smith-Jones", "de la Cruz").
_NAME_WORD_BREAKS = re.compile(r"[\s\-\u2010-\u2015]+")


def name_key(text: Optional[str]) -> str:
    """A name as it is searched: lower case, accents and every character that is not a letter or a
    digit dropped ("O'Connor" and "oconnor" both read "oconnor", "García" reads "garcia")."""
    decomposed = unicodedata.normalize("NFKD", (text or "").casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def last_word_key(text: Optional[str]) -> str:
    """The last word of a name of several words ("Smith-Jones", "García López", "de la Cruz"), so
    that the end of a compound name finds it too; "" for a name of one word."""
    words = [word for word in _NAME_WORD_BREAKS.split((text or "").strip()) if name_key(word)]
    return name_key(words[-1]) if len(words) > 1 else ""


def chart_key(chart_number: Optional[str]) -> str:
    """A chart number without its punctuation, lower case: "01-0000005" reads "010000005"."""
    return name_key(chart_number)


def chart_digits_key(chart_number: Optional[str]) -> str:
    """The chart's number without its prefix and leading zeros: "01-0000005" and "CSV-005" read
    "5" (the last run of digits in it), "" when it has no digits."""
    runs = re.findall(r"\d+", chart_number or "")
    return (runs[-1].lstrip("0") or "0") if runs else ""


def phone_key(number: Optional[str], region: str) -> str:
    """A phone number's digits as the country writes them nationally ("+1 617 555 0187", "(617)
    555-0187" and "16175550187" all read "6175550187"); the bare digits of a number that is not
    valid (kept as written on the chart)."""
    return national_digits(number or "", region)


#: The chart fields each search key is made from.
SEARCH_SOURCES = {
    "search_first": ("first_name",),
    "search_last": ("last_name",),
    "search_last_end": ("last_name",),
    "search_chart": ("chart_number",),
    "chart_digits": ("chart_number",),
    "phone_digits": ("phone", "practice"),
    "mobile_digits": ("mobile_phone", "practice"),
}


class BirthSex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    UNKNOWN = "U", "Unknown"


class PatientQuerySet(models.QuerySet):
    def with_portal_account(self) -> "PatientQuerySet":
        return self.filter(portal_user__isnull=False)

    def without_portal_account(self) -> "PatientQuerySet":
        return self.filter(portal_user__isnull=True)

    def search(self, term: str, *, regions: Iterable[str] = ("US",)) -> "PatientQuerySet":
        """Patients matching what the front desk typed: the start of a first or last name (or of
        the last word of a compound last name) in any case and without accents, a first and last
        name in either order ("maria garcia", "Garcia, Maria"), a chart number with or without its
        prefix and leading zeros, a phone or mobile number in any format (`regions`: the
        countries of the practices searched, for numbers typed without a country code), the start
        of an email address, or a whole date of birth (`parse_date_of_birth`)."""
        term = (term or "").strip()
        if not term:
            return self
        born = parse_date_of_birth(term)
        if born is not None:
            return self.filter(date_of_birth=born)
        return self.filter(_search_condition(term, tuple(regions)))

    def bulk_create(self, objs, *args, **kwargs):
        """Bulk inserts (the CSV import, the demo) write the search keys like `save` does."""
        objs = list(objs)
        _fill_search_keys(objs)
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs, fields = list(objs), list(fields)
        keys = search_keys_of(fields)
        if keys:
            _fill_search_keys(objs)
            fields += [key for key in keys if key not in fields]
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update(self, **kwargs):
        keys = search_keys_of(kwargs)
        if not keys:
            return super().update(**kwargs)
        # A set-based change of a name, a number or a chart number rewrites the keys made from
        # it, for the rows it changed (found first: the filter may name the changed field).
        ids = list(self.values_list("pk", flat=True))
        changed = super().update(**kwargs)
        for start in range(0, len(ids), 2000):
            rows = list(Patient.objects.filter(pk__in=ids[start : start + 2000]).select_related("practice"))
            _fill_search_keys(rows)
            models.QuerySet.bulk_update(Patient.objects.all(), rows, keys)
        return changed


#: Words of a typed name tried as first/last name splits ("mary ann smith"); more are one name.
_MAX_NAME_WORDS = 4
#: A number with fewer digits is a chart number only: a phone search by its first 3 digits would
#: match a whole area code.
_MIN_PHONE_DIGITS = 4


def _starts(key: str, value: str) -> models.Q:
    return models.Q(**{f"{key}__startswith": value})


def _last_name_starts(value: str) -> models.Q:
    return _starts("search_last", value) | _starts("search_last_end", value)


def _search_condition(term: str, regions: tuple[str, ...]) -> models.Q:
    words = [name_key(word) for word in re.split(r"[\s,;]+", term)]
    words = [word for word in words if word][:_MAX_NAME_WORDS]
    whole = "".join(words)
    condition = models.Q(pk__in=[])
    if whole:
        condition |= _last_name_starts(whole) | _starts("search_first", whole) | _starts("search_chart", whole)
    for split in range(1, len(words)):
        before, after = "".join(words[:split]), "".join(words[split:])
        condition |= (_starts("search_first", before) & _last_name_starts(after)) | (
            _last_name_starts(before) & _starts("search_first", after)
        )
    digits = "".join(ch for ch in term if ch.isdigit())
    if digits and re.fullmatch(r"[\d\s().+\-/#]+", term):
        # Digits typed alone (with a phone's punctuation): the number of a chart or a phone.
        condition |= models.Q(chart_digits=digits.lstrip("0") or "0")
        if len(digits) >= _MIN_PHONE_DIGITS:
            for number in {phone_key(term, region) for region in regions} | {digits}:
                condition |= _starts("phone_digits", number) | _starts("mobile_digits", number)
    if " " not in term:
        condition |= models.Q(email__istartswith=term)
    return condition


#: Dates of birth as typed at a desk, month first (US): 03/15/1945, 3/15/45, 3-15-1945, 1945-03-15.
DATE_OF_BIRTH_FORMATS = ("%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%m-%d-%y", "%m.%d.%Y", "%m.%d.%y", "%Y-%m-%d")
DATE_OF_BIRTH_FORMATS_IN_WORDS = "MM/DD/YYYY (or MM/DD/YY, or YYYY-MM-DD)"


def parse_date_of_birth(text: str, *, today: Optional[datetime.date] = None) -> Optional[datetime.date]:
    """A date of birth typed at a desk, or None if `text` is not one. A two-digit year is the
    latest such year that is not in the future ("3/15/45" is March 15, 1945, not 2045)."""
    text = (text or "").strip()
    for fmt in DATE_OF_BIRTH_FORMATS:
        try:
            parsed = datetime.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if "%y" in fmt:
            parsed = born_in_past_century(parsed, today=today)
        return parsed
    return None


def born_in_past_century(date: datetime.date, *, today: Optional[datetime.date] = None) -> datetime.date:
    """A date of birth read from a two-digit year, moved back a century when it would be in the
    future (strptime reads "45" as 2045)."""
    today = today or timezone.localdate()
    if date <= today:
        return date
    try:
        return date.replace(year=date.year - 100)
    except ValueError:  # February 29th of a year that was not a leap year a century before
        return date.replace(year=date.year - 100, day=28)


class DateOfBirthFormField(forms.DateField):
    """A date of birth typed into a form: a two-digit year is read as a past one (born_in_past_century)."""

    def strptime(self, value: str, format: str) -> datetime.date:
        parsed = super().strptime(value, format)
        return born_in_past_century(parsed) if "%y" in format else parsed


class DateOfBirthField(models.DateField):
    """The chart's date of birth: every form of it (the patient form, the add-and-invite form, the
    CSV import) reads "3/15/45" as 1945."""

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": DateOfBirthFormField, **kwargs})


def search_keys_of(fields: Iterable[str]) -> list[str]:
    """The search keys made from any of `fields` (names of the chart's fields)."""
    fields = {"practice" if name == "practice_id" else name for name in fields}
    return [key for key, sources in SEARCH_SOURCES.items() if fields & set(sources)]


def _fill_search_keys(patients: list["Patient"]) -> None:
    """Write every patient's search keys; the practices' countries are read once."""
    missing = {p.practice_id for p in patients if p.practice_id and not Patient.practice.is_cached(p)}
    countries = dict(Practice.objects.filter(pk__in=missing).values_list("pk", "country")) if missing else {}
    for patient in patients:
        if Patient.practice.is_cached(patient):
            region = patient.practice.country
        else:
            region = countries.get(patient.practice_id, "US")
        patient.fill_search_keys(region)


class Patient(PhoneReadInPracticeCountry, models.Model):
    """A patient's chart as the practice keeps it.

    Fields an invitation needs are optional here on purpose: the chart is always saved, and
    eligibility names every missing field instead.
    """

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="patients")
    chart_number = models.CharField(max_length=32)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    date_of_birth = DateOfBirthField(null=True, blank=True)
    zip_code = models.CharField("ZIP code", max_length=10, blank=True, validators=[ZIP_CODE_VALIDATOR])
    email = models.EmailField(
        blank=True, help_text="Family members may share one address."
    )
    phone = models.CharField(max_length=32, blank=True)
    birth_sex = models.CharField(max_length=1, choices=BirthSex.choices, blank=True)
    email_consent = models.BooleanField(
        "consents to email", default=False, help_text="The patient agreed to receive email."
    )
    mobile_phone = models.CharField(
        "mobile phone", max_length=20, blank=True, default="", db_default="",
        help_text="For invitations by text. Local numbers are read as the practice's country's.",
    )
    sms_consent = models.BooleanField(
        "consents to texts", default=False, db_default=False,
        help_text="The patient agreed to receive text messages (separate from email consent).",
    )
    sms_consent_changed_at = models.DateTimeField("text consent changed at", null=True, blank=True, editable=False)
    sms_consent_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        editable=False, verbose_name="text consent changed by",
    )
    # The number the text service could not deliver to (invalid, a landline, unknown to the
    # carrier). Blocks texts only while it is still the number on file, like `bounced_email`.
    undeliverable_mobile = models.CharField(
        "undeliverable mobile number", max_length=20, blank=True, default="", db_default="", editable=False,
    )
    undeliverable_mobile_reason = models.CharField(max_length=200, blank=True, default="", db_default="", editable=False)
    deceased = models.BooleanField(default=False)
    preferred_language = models.CharField(
        "preferred language", max_length=10, choices=languages.choices,
        default=languages.DEFAULT_LANGUAGE, db_default=languages.DEFAULT_LANGUAGE,
        help_text="The invitation email and text, and the portal's pages, are in this language.",
    )
    # What the admin's search looks up, kept in step with the fields they come from (see
    # `name_key` and the others above; written by save(), bulk_create() and bulk_update()).
    search_first = models.CharField(max_length=100, blank=True, default="", db_default="", editable=False)
    search_last = models.CharField(max_length=100, blank=True, default="", db_default="", editable=False)
    search_last_end = models.CharField(max_length=100, blank=True, default="", db_default="", editable=False)
    search_chart = models.CharField(max_length=32, blank=True, default="", db_default="", editable=False)
    chart_digits = models.CharField(max_length=32, blank=True, default="", db_default="", editable=False)
    phone_digits = models.CharField(max_length=32, blank=True, default="", db_default="", editable=False)
    mobile_digits = models.CharField(max_length=20, blank=True, default="", db_default="", editable=False)
    portal_user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patient_record",
        editable=False,
        help_text="The patient's portal account, once registered.",
    )
    registered_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The address that bounced permanently. Eligibility blocks invitations only while it is
    # still the address on file, so correcting the email clears the block by itself.
    bounced_email = models.EmailField(
        "hard-bounced address",
        blank=True,
        editable=False,
        help_text="The email service reported this address as undeliverable.",
    )
    self_signup_unverified = models.BooleanField(
        "self sign-up, unverified",
        default=False,
        help_text="Created from the public 'Request portal access' page; staff have not yet "
        "checked this chart. Untick once verified.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PatientQuerySet.as_manager()
    phone_field = "mobile_phone"

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "chart_number"],
                name="patient_unique_chart_number_per_practice",
                violation_error_message="Another patient of this practice has this chart number.",
            )
        ]
        indexes = [
            models.Index(fields=["practice", "last_name", "first_name", "id"], name="patient_name_idx"),
            models.Index(fields=["last_name", "first_name", "id"], name="patient_sort_idx"),
            models.Index(fields=["practice", "date_of_birth"], name="patient_dob_idx"),
            models.Index(fields=["practice", "email"], name="patient_email_idx"),
            models.Index(fields=["chart_number"], name="patient_chart_idx"),
            models.Index(fields=["practice", "created_at"], name="patient_created_idx"),
            models.Index(fields=["practice", "preferred_language"], name="patient_language_idx"),
            models.Index(
                fields=["practice"],
                condition=models.Q(self_signup_unverified=True),
                name="patient_selfsignup_idx",
            ),
            # A patient's reply (STOP, START, HELP) finds the charts with the number.
            models.Index(fields=["mobile_phone"], condition=~models.Q(mobile_phone=""), name="patient_mobile_idx"),
            # The admin's search: prefix lookups (LIKE 'garcia%') on PostgreSQL need the pattern
            # operator class whatever the database's collation; SQLite ignores it.
            *(
                models.Index(fields=[key], opclasses=["varchar_pattern_ops"], name=f"patient_{key}_idx")
                for key in SEARCH_SOURCES
            ),
        ]

    def __str__(self) -> str:
        # Shown in admin history and messages: chart number and name only, nothing clinical.
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return f"{name or 'Unnamed patient'} (chart {self.chart_number})"

    @property
    def has_portal_account(self) -> bool:
        return self.portal_user_id is not None

    def clean_fields(self, exclude=None) -> None:
        for field in ("first_name", "last_name", "chart_number", "phone", "zip_code"):
            setattr(self, field, (getattr(self, field) or "").strip())
        self.email = normalise_email(self.email)
        super().clean_fields(exclude=exclude)  # the mobile number is read in the practice's country first

    def note_sms_consent_change(self, *, by, now: datetime.datetime) -> None:
        """Record who changed text consent (to what `sms_consent` now says) and when: the patient
        form, the CSV import and a STOP reply call it whenever they set it."""
        self.sms_consent_changed_at = now
        self.sms_consent_changed_by = by if by is not None and getattr(by, "pk", None) else None

    def clean(self) -> None:
        validate_date_of_birth(self.date_of_birth)

    def fill_search_keys(self, region: Optional[str] = None) -> None:
        """Write the search keys from the chart's fields (`region`: the practice's country)."""
        if region is None:
            region = self.practice.country if self.practice_id else "US"
        self.search_first = name_key(self.first_name)[:100]
        self.search_last = name_key(self.last_name)[:100]
        self.search_last_end = last_word_key(self.last_name)[:100]
        self.search_chart = chart_key(self.chart_number)[:32]
        self.chart_digits = chart_digits_key(self.chart_number)[:32]
        self.phone_digits = phone_key(self.phone, region)[:32]
        self.mobile_digits = phone_key(self.mobile_phone, region)[:20]

    def save(self, *args, **kwargs) -> None:
        self.email = normalise_email(self.email)
        self.fill_search_keys()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            keys = search_keys_of(update_fields)
            kwargs["update_fields"] = [*update_fields, *(key for key in keys if key not in update_fields)]
        super().save(*args, **kwargs)


def validate_date_of_birth(value: Optional[datetime.date], *, today: Optional[datetime.date] = None) -> None:
    if value is None:
        return
    today = today or timezone.localdate()
    if value > today:
        raise ValidationError({"date_of_birth": "Date of birth cannot be in the future."})
    if value < today.replace(year=today.year - MAX_AGE_YEARS):
        raise ValidationError(
            {"date_of_birth": f"Date of birth is more than {MAX_AGE_YEARS} years ago; check the year."}
        )
