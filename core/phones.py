"""Phone numbers as data: one normal form (E.164, ``+16175550123``) for every number the portal
keeps, and errors that tell a person what is wrong with the one they typed.

Used by the patient form, the CSV import and SMS eligibility (built on Google's libphonenumber,
the `phonenumbers` package):

* `normalise_phone(raw, region)`: the usual local ways of writing a number ("(617) 555-0123",
  "617.555.0123", "+1 617 555 0123", "6175550123") become E.164; `region` is the practice's
  country (ISO 3166 code such as "US" or "GB") and applies to numbers written without "+".
  A number that is not valid raises `InvalidPhoneNumber` (a ValueError) whose message can be shown
  to staff as it is ("“617555012” is not a valid US phone number: it has 9 digits; US numbers have
  10.").
* `is_probably_mobile(e164)`: whether texting the number is worth trying, from the number's type
  in libphonenumber's metadata. Many countries' numbers (all of the US and Canada) do not show
  whether they are mobile: those count as mobile, and Twilio's answer (error 21614, or a text
  undelivered with 30006) settles it later.
* `display_phone(e164, region)`: how staff read a stored number (national format at home,
  international otherwise).
* `MobileNumberField`: a form field for a number typed in any of those ways, cleaned into E.164 in
  the form's `region` (forms that are not a model's: the representative's and the caregiver's).
* `national_digits(raw, region)`: a number's digits as its country writes them at home, however
  it was typed ("+1 (617) 555-0187" and "617.555.0187" both read "6175550187"): what a search
  by phone number compares.
"""

from __future__ import annotations

import phonenumbers
from django import forms
from django.core.exceptions import ValidationError
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

#: Number types that cannot take a text (or are certainly not a patient's own phone).
NOT_MOBILE_TYPES = {
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
    PhoneNumberType.PAGER,
}


class InvalidPhoneNumber(ValueError):
    """A number that cannot be used; the message is written for the person who typed it."""


def normalise_phone(raw: str, region: str) -> str:
    """The number in E.164, or InvalidPhoneNumber saying what is wrong with it."""
    text = (raw or "").strip()
    region = (region or "").upper()
    if not text:
        raise InvalidPhoneNumber("Enter a phone number.")
    if len(text) > 40:
        raise InvalidPhoneNumber("This is too long to be a phone number.")
    shown = f"“{text}”"
    try:
        number = phonenumbers.parse(text, region or None)
    except NumberParseException as exc:
        raise InvalidPhoneNumber(_parse_problem(exc, shown, region)) from None
    if number.extension:
        raise InvalidPhoneNumber(f"{shown} has an extension: enter a mobile number without one.")
    number_region = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(
        number.country_code
    )
    where = number_region if number_region and number_region != "ZZ" else f"+{number.country_code}"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in (ValidationResult.TOO_SHORT, ValidationResult.TOO_LONG, ValidationResult.INVALID_LENGTH):
        digits = len(phonenumbers.national_significant_number(number))
        expected = _expected_lengths(number_region)
        raise InvalidPhoneNumber(
            f"{shown} is not a valid {where} phone number: it has {digits} digit{'s' if digits != 1 else ''}"
            + (f"; {expected}." if expected else ".")
        )
    if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        expected = _expected_lengths(number_region)
        hint = f" ({expected} digits)." if expected else "."
        raise InvalidPhoneNumber(f"{shown} has no area code: enter the whole number{hint}")
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        raise InvalidPhoneNumber(f"{shown} does not start with a known country code.")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(f"{shown} is not a valid {where} phone number: check the area code and the digits.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_probably_mobile(e164: str) -> bool:
    """False only when the number's type shows it cannot take texts (a landline, toll-free, ...);
    numbers whose type does not show it (every US number) are taken as mobile."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException as exc:
        raise InvalidPhoneNumber(f"“{e164}” is not a number in international form (+...): {exc}") from None
    return phonenumbers.number_type(number) not in NOT_MOBILE_TYPES


def display_phone(e164: str, region: str = "") -> str:
    """A stored number as staff read it: "(617) 555-0123" at home, "+44 20 7946 0958" abroad."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    home = phonenumbers.region_code_for_number(number) == (region or "").upper()
    style = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style)


def national_digits(raw: str, region: str) -> str:
    """The national significant number of `raw` read in `region` (no country code, no trunk 0;
    also for a number that is not valid, such as a fictional one), or its bare digits when it
    cannot be read as a number at all; "" when it has no digits."""
    digits = "".join(ch for ch in raw or "" if ch.isdigit())
    if not digits:
        return ""
    try:
        number = phonenumbers.parse(raw.strip()[:40], (region or "").upper() or None)
    except NumberParseException:
        return digits
    return phonenumbers.national_significant_number(number) or digits


def _parse_problem(exc: NumberParseException, shown: str, region: str) -> str:
    if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        if region:
            return f"{shown} does not start with a known country code."
        return f"{shown} has no country code: write it with + and the country code."
    if exc.error_type == NumberParseException.TOO_SHORT_NSN or exc.error_type == NumberParseException.TOO_SHORT_AFTER_IDD:
        return f"{shown} is too short to be a {region or 'phone'} number."
    if exc.error_type == NumberParseException.TOO_LONG:
        return f"{shown} is too long to be a phone number."
    return f"{shown} is not a phone number: use digits, with spaces, dashes, dots or brackets if you like."


def _expected_lengths(region: str) -> str:
    """"US numbers have 10" (digits, without the country code), or "" where it is not known."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region, None) if region else None
    lengths = sorted(set(metadata.general_desc.possible_length or ())) if metadata and metadata.general_desc else []
    if not lengths:
        return ""
    counted = str(lengths[0]) if len(lengths) == 1 else f"{', '.join(map(str, lengths[:-1]))} or {lengths[-1]}"
    return f"{region} numbers have {counted}"


class MobileNumberField(forms.CharField):
    """A mobile number typed in any usual local form, cleaned into E.164; a number that cannot be
    read is an error on the field saying what is wrong. `region` is set by the form (the practice's
    country)."""

    region = "US"

    def __init__(self, *args, **kwargs):
        # As typed ("+44 (0) 7700 900 123") a number is longer than its stored E.164 form.
        kwargs["max_length"] = 40
        super().__init__(*args, **kwargs)

    def clean(self, value) -> str:
        typed = (super().clean(value) or "").strip()
        if not typed:
            return ""
        try:
            return normalise_phone(typed, self.region)
        except InvalidPhoneNumber as error:
            raise ValidationError(str(error)) from error
