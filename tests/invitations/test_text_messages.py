"""What an invitation text says (invitations.wording.invitation_text): staff wording checked with errors that
say what to fix (an unknown snippet, no link, template language, the characters that would make it
a longer message, too long with this practice's name), and `compose`, which always gives one GSM-7
message with the link whatever the practice is called."""

import pytest
from django.core.exceptions import ValidationError

from core.sending.text_segments import measure
from invitations.models import InvitationTemplate
from invitations.vocabulary import TEXT_TOKEN_BYTES, new_token
from invitations.wording.invitation_text import (
    DEFAULT_TEXT_BODY,
    compose,
    sample,
    text_link,
    validate_text_body,
)
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db
TOKEN = new_token(TEXT_TOKEN_BYTES)
LINK = f"https://portal.example.test/t/{TOKEN}/"


def unsaved_practice(name="Maple Street Dental", phone="(617) 555-0142"):
    return PracticeFactory.build(name=name, contact_phone=phone)


def one_gsm7_message(text: str) -> bool:
    size = measure(text)
    return size.encoding == "GSM-7" and size.segments == 1


def error_of(body: str, at=None) -> str:
    with pytest.raises(ValidationError) as raised:
        validate_text_body(body, practice=at or unsaved_practice())
    [message] = raised.value.messages
    return message


# -- staff wording ----------------------------------------------------------------------------------


def test_the_default_and_a_good_wording_pass():
    validate_text_body("", practice=unsaved_practice())  # empty: the default wording
    validate_text_body("   ", practice=unsaved_practice())
    validate_text_body("[Practice Name]: your portal is ready: [Registration Link] Call [Practice Phone]. STOP to end", practice=unsaved_practice())


def test_an_unknown_snippet_is_named_with_the_ones_to_use():
    assert error_of("Hi [Patient Name], join [Practice Name]: [Registration Link] [Appointment]") == (
        "Unknown snippet [Appointment], [Patient Name]. Use only [Practice Name], [Practice Phone], [Registration Link]."
    )


def test_the_link_is_required():
    assert error_of("[Practice Name] has a patient portal. Ask us for a link.") == (
        "The text must contain [Registration Link]: it is how the patient registers."
    )


@pytest.mark.parametrize("body", ["{{ practice.name }}: [Registration Link]", "{% if x %}Hi{% endif %} [Registration Link]"])
def test_template_language_is_refused(body):
    assert error_of(body) == "Use bracketed snippets such as [Practice Name], not {{ }} or {% %}."


@pytest.mark.parametrize("body,expected", [
    ("Your portal: [Registration Link] Reply STOP to opt out.", "The text must contain [Practice Name]"),
    ("[Practice Name]: your portal: [Registration Link]", "The text must tell patients how to opt out"),
])
def test_the_text_names_the_sender_and_how_to_opt_out(body, expected):
    assert error_of(body).startswith(expected)


def test_characters_that_would_make_a_longer_message_are_named():
    message = error_of("[Practice Name]’s portal — join here: [Registration Link] 😀 ’")
    assert message.startswith("These characters would turn the text into a longer, costlier message: ’ — 😀.")


def test_too_long_with_this_practices_name_says_by_how_much():
    body = "[Practice Name] invites you to its new patient portal: [Registration Link] Reply STOP to opt out."
    validate_text_body(body, practice=unsaved_practice("Oak Dental"))
    long_name = unsaved_practice("The Greater Springfield Family and Cosmetic Dentistry Group")
    size = measure(sample(long_name, body)).units
    assert size > 160
    assert error_of(body, long_name) == (
        f"With this practice's name and the link the text is {size} characters; keep it to 160 (one text message): "
        f"{size - 160} too many."
    )


def test_the_template_puts_the_error_on_the_text_field():
    saved = PracticeFactory(name="Maple Street Dental")
    template = InvitationTemplate(practice=saved, subject="Portal", html_body="<p>[Registration Link]</p>", text_body="[Practice Name] says hi")
    with pytest.raises(ValidationError) as raised:
        template.full_clean()
    assert list(raised.value.message_dict) == ["text_body"]


# -- composing --------------------------------------------------------------------------------------


def test_the_link_is_short_and_the_same_page_as_the_emails():
    assert text_link(TOKEN) == LINK
    assert len(TOKEN) == 32


def test_compose_fills_in_the_practices_wording():
    body = "[Practice Name]: join our portal [Registration Link] Questions? [Practice Phone]"
    assert compose(unsaved_practice(), body, TOKEN) == f"Maple Street Dental: join our portal {LINK} Questions? (617) 555-0142"
    assert compose(unsaved_practice(), "", TOKEN) == f"Maple Street Dental: set up your patient portal account: {LINK} Reply STOP to opt out."


def test_a_wording_that_no_longer_fits_falls_back_to_the_default():
    # Saved when the practice had a short name; it was renamed since.
    body = "[Practice Name] invites you to its new patient portal, where you can see your visits: [Registration Link]"
    renamed = unsaved_practice("Greater Springfield Family Dentistry")
    text = compose(renamed, body, TOKEN)
    assert text == f"Greater Springfield Family Dentistry: set up your patient portal account: {LINK} Reply STOP to opt out."
    assert one_gsm7_message(text)


def test_a_long_practice_name_is_shortened_and_the_text_stays_one_message():
    name = "The Greater Springfield Family, Cosmetic and Implant Dentistry Group of Massachusetts"
    text = compose(unsaved_practice(name), "", TOKEN)
    assert one_gsm7_message(text) and LINK in text and text.endswith("Reply STOP to opt out.")
    shortened = text.split(":")[0]
    assert shortened.endswith("...") and name.startswith(shortened[:-3])
    assert len(text) == 160 or len(text) == 159  # as much of the name as fits


@pytest.mark.parametrize("name, shown", [
    ("Clínica Dental São João", "Clinica Dental Sao Joao"),
    ("Ærø Tandlæge", "Ærø Tandlæge"),  # GSM-7 letters stay as they are
    ("O’Brien Family Dental", "O'Brien Family Dental"),  # typographic punctuation as its plain form
    ("Smile “Bright” Dental – Downtown", 'Smile "Bright" Dental - Downtown'),
    ("Happy Teeth 😀 Dental", "Happy Teeth Dental"),
])
def test_a_name_outside_gsm7_is_written_in_gsm7(name, shown):
    text = compose(unsaved_practice(name), "", TOKEN)
    assert text.startswith(f"{shown}: set up your patient portal account: ")
    assert one_gsm7_message(text)


def test_a_name_with_nothing_in_gsm7_still_says_who_is_texting():
    text = compose(unsaved_practice("北京牙科诊所"), "", TOKEN)
    assert text.startswith("Your practice: set up your patient portal account: ")
    assert one_gsm7_message(text)


@pytest.mark.parametrize("length", [1, 20, 36, 37, 60, 100, 200])
@pytest.mark.parametrize("letters", ["a", "é", "€", "ß", "ą", "[", "😀"])
def test_compose_always_gives_one_gsm7_message_with_the_link(length, letters):
    name = ("Dental " + letters * length)[:length + 7]
    for body in ("", DEFAULT_TEXT_BODY, "[Practice Name] [Practice Name] [Practice Name]: [Registration Link]"):
        text = compose(unsaved_practice(name, phone="+1 617 555 0142 ☎"), body, TOKEN)
        assert one_gsm7_message(text), text
        assert LINK in text


def test_the_preview_shows_a_link_of_the_real_length():
    preview = sample(unsaved_practice(), "")
    assert measure(preview).units == measure(compose(unsaved_practice(), "", TOKEN)).units
