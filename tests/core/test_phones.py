"""Phone numbers: the usual ways of writing them become E.164; a bad one gets an error a person
can act on; whether texting a number is worth trying."""

import pytest

from core.phones import InvalidPhoneNumber, display_phone, is_probably_mobile, normalise_phone


@pytest.mark.parametrize(
    "raw", ["(617) 555-0123", "617.555.0123", "617-555-0123", "+1 617 555 0123", "6175550123", "1 617 555 0123",
            " (617)555-0123 ", "+1-617-555-0123"],
)
def test_it_reads_the_usual_us_formats(raw):
    assert normalise_phone(raw, "US") == "+16175550123"


@pytest.mark.parametrize(
    "raw, message",
    [
        ("617555012", "“617555012” is not a valid US phone number: it has 9 digits; US numbers have 10."),
        ("61755501234", "“61755501234” is not a valid US phone number: it has 11 digits; US numbers have 10."),
        ("555-0123", "“555-0123” has no area code: enter the whole number (US numbers have 10 digits)."),
        ("(123) 555-0123", "“(123) 555-0123” is not a valid US phone number: check the area code and the digits."),
        ("call me", "“call me” is not a phone number: use digits, with spaces, dashes, dots or brackets if you like."),
        ("617-555-0123 ext 45", "“617-555-0123 ext 45” has an extension: enter a mobile number without one."),
        ("+999 1234 5678", "“+999 1234 5678” does not start with a known country code."),
        ("", "Enter a phone number."),
        ("   ", "Enter a phone number."),
    ],
)
def test_a_bad_number_says_what_is_wrong(raw, message):
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalise_phone(raw, "US")
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)  # forms and the CSV import catch ValueError


def test_the_practices_country_is_the_default_region():
    assert normalise_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalise_phone("07911 123456", "gb") == "+447911123456"
    assert normalise_phone("+44 7911 123456", "US") == "+447911123456"  # written with its own country code
    with pytest.raises(InvalidPhoneNumber, match="not a valid GB phone number"):
        normalise_phone("0791112345", "GB")
    with pytest.raises(InvalidPhoneNumber, match="not a valid US phone number: it has 8 digits"):
        normalise_phone("+1 617 555 01", "GB")  # the error names the number's own country


def test_without_a_region_a_number_needs_its_country_code():
    assert normalise_phone("+1 617 555 0123", "") == "+16175550123"
    with pytest.raises(InvalidPhoneNumber, match="has no country code"):
        normalise_phone("6175550123", "")


@pytest.mark.parametrize(
    "e164, mobile",
    [
        ("+16175550123", True),  # US numbers do not show it: FIXED_LINE_OR_MOBILE
        ("+447911123456", True),  # a UK mobile
        ("+442079460958", False),  # a London landline
        ("+18005550199", False),  # toll-free
        ("+15005550009", True),  # type unknown to the metadata: worth trying, Twilio will say
    ],
)
def test_whether_a_number_is_probably_a_mobile(e164, mobile):
    assert is_probably_mobile(e164) is mobile


def test_a_number_not_in_international_form_is_not_guessed():
    with pytest.raises(InvalidPhoneNumber):
        is_probably_mobile("6175550123")


def test_staff_read_numbers_in_their_own_countrys_format():
    assert display_phone("+16175550123", "US") == "(617) 555-0123"
    assert display_phone("+442079460958", "US") == "+44 20 7946 0958"
    assert display_phone("not a number", "US") == "not a number"
