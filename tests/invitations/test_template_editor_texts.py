"""The invitation text on the template editor: the field with its snippets, the same rules as the
email (field errors, never template language), the text as the patient reads it with its length,
the live preview, saving through the audited service, roles and tenant scoping."""

import re

import pytest

from invitations.models import InvitationTemplate
from invitations.wording import invitation_text
from patients.audit import AuditAction, AuditEntry
from tests.invitations.patient_admin import editor_url, preview_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

GOOD_BODY = "<p>Hello [First Name],</p><p><a href=\"[Registration Link]\">Join</a> before [Expiry Date].</p>"
GOOD_TEXT = "[Practice Name] invites you to its patient portal: [Registration Link] Reply STOP to opt out."
#: A text link as the sample carries it: the real base URL and a token of the real length.
TEXT_LINK = r"https://portal\.example\.test/t/[A-Za-z0-9_-]{32}/"


def form_data(**overrides) -> dict:
    return {"subject": "Join [Practice Name]", "html_body": GOOD_BODY, "text_body": GOOD_TEXT, "save": "1", **overrides}


def sample_on_page(page: str) -> tuple[str, str]:
    """The sample text bubble and the length line under it."""
    bubble = re.search(r'<div id="preview-sms" class="sms-bubble">(.*?)</div>', page, re.S).group(1)
    length = re.search(r'<span id="preview-sms-length"[^>]*>(.*?)</span>', page, re.S).group(1)
    return bubble, length


def test_the_editor_has_the_text_field_its_snippets_and_the_default_text_as_the_patient_reads_it(manager_client, practice_a):
    page = manager_client.get(editor_url(practice_a)).content.decode()
    assert '<textarea name="text_body"' in page
    assert f'placeholder="{invitation_text.DEFAULT_TEXT_BODY}"' in page  # empty box: the default wording
    buttons = re.search(r'data-snippets-for="id_text_body" hidden>(.*?)</div>', page, re.S).group(1)
    assert re.findall(r'data-snippet="([^"]+)"', buttons) == list(invitation_text.TEXT_SNIPPETS)
    bubble, length = sample_on_page(page)
    assert re.fullmatch(rf"Practice A: set up your patient portal account: {TEXT_LINK} Reply STOP to opt out\.", bubble)
    assert length == f"{len(bubble)} of 160 characters"
    assert "Invitation texts are turned off for this practice" in page


def test_saving_the_text_stores_it_on_one_line_and_the_audit_names_it(manager_client, practice_a):
    response = manager_client.post(editor_url(practice_a), form_data(text_body="  " + GOOD_TEXT.replace(" ", "\r\n", 1)))
    assert response.status_code == 302
    template = InvitationTemplate.objects.get(practice=practice_a)
    assert template.text_body == GOOD_TEXT
    entry = AuditEntry.objects.get(action=AuditAction.TEMPLATE_EDIT)
    assert entry.practice_id == practice_a.pk
    assert entry.summary == "Changed the invitation template's subject, email body (html), invitation text"
    assert "invites you" not in entry.summary  # what changed, never the wording
    # The texts sent from now on carry the practice's wording.
    sent = invitation_text.compose(practice_a, InvitationTemplate.for_practice(practice_a).text_body, "t" * 32)
    assert sent == f"Practice A invites you to its patient portal: https://portal.example.test/t/{'t' * 32}/ Reply STOP to opt out."


def test_changing_only_the_text_audits_only_the_text(manager_client, practice_a):
    manager_client.post(editor_url(practice_a), form_data())
    stored = InvitationTemplate.objects.get()
    manager_client.post(
        editor_url(practice_a),
        form_data(subject=stored.subject, html_body=stored.html_body, text_body="[Registration Link] from [Practice Name]. Reply STOP to opt out."),
    )
    assert InvitationTemplate.objects.get().text_body == "[Registration Link] from [Practice Name]. Reply STOP to opt out."
    latest = AuditEntry.objects.filter(action=AuditAction.TEMPLATE_EDIT).order_by("-pk").first()
    assert latest.summary == "Changed the invitation template's invitation text"


def test_an_empty_text_means_the_default_wording(manager_client, practice_a):
    manager_client.post(editor_url(practice_a), form_data(text_body="   "))
    assert InvitationTemplate.objects.get().text_body == ""
    bubble, _ = sample_on_page(manager_client.get(editor_url(practice_a)).content.decode())
    assert bubble.startswith("Practice A: set up your patient portal account: ")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{{ practice }} [Registration Link]", "Use bracketed snippets such as [Practice Name], not {{ }} or {% %}."),
        ("Hi {% if x %} [Registration Link]", "Use bracketed snippets such as [Practice Name], not {{ }} or {% %}."),
        ("Hello [First Name]: [Registration Link]", "Unknown snippet [First Name]."),
        ("[Practice Name] invites you to its portal.", "The text must contain [Registration Link]"),
        ("[Practice Name] invites you \u2019now\u2019: [Registration Link]", "These characters would turn the text into a longer, costlier message: \u2019."),
        ("[Practice Name] " + "x" * 120 + " [Registration Link]", "keep it to 160 (one text message)"),
    ],
)
def test_a_text_that_breaks_the_rules_gets_an_error_on_its_field_and_nothing_is_saved(manager_client, practice_a, text, message):
    response = manager_client.post(editor_url(practice_a), form_data(text_body=text))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["text_body"] and len(errors["text_body"]) == 1 and message in errors["text_body"][0]
    assert "Please correct the errors below. Nothing was saved." in response.content.decode()
    assert not InvitationTemplate.objects.exists() and not AuditEntry.objects.exists()


def test_the_length_error_counts_with_this_practices_name(manager_client, practice_a):
    practice_a.name = "The Very Long Named Family and Cosmetic Dentistry Practice of Springfield"
    practice_a.save()
    text = "[Practice Name] invites you to set up your patient portal account here: [Registration Link] Reply STOP to opt out."
    errors = manager_client.post(editor_url(practice_a), form_data(text_body=text)).context["form"].errors
    sample = invitation_text.sample(practice_a, text)
    assert f"the text is {len(sample)} characters; keep it to 160 (one text message): {len(sample) - 160} too many." in str(errors["text_body"])


def test_a_saved_text_too_long_since_a_rename_gets_one_error_about_what_was_typed(manager_client, practice_a):
    text = "[Practice Name] invites you to set up your patient portal account: [Registration Link] Reply STOP."
    manager_client.post(editor_url(practice_a), form_data(text_body=text))
    practice_a.name = "The Very Long Named Family and Cosmetic Dentistry Practice of Springfield"
    practice_a.save()
    errors = manager_client.post(editor_url(practice_a), form_data(text_body="Hello [First Name] [Registration Link]")).context["form"].errors
    assert [str(e) for e in errors["text_body"]] == [
        "Unknown snippet [First Name]. Use only [Practice Name], [Practice Phone], [Registration Link]."
    ]
    assert InvitationTemplate.objects.get().text_body == text


def test_the_text_error_shows_even_when_the_email_has_errors_too(manager_client, practice_a):
    response = manager_client.post(
        editor_url(practice_a), form_data(html_body="<p>No link</p>", text_body="No link either")
    )
    errors = response.context["form"].errors
    assert "Add [Registration Link]" in str(errors["html_body"])
    assert "The text must contain [Registration Link]" in str(errors["text_body"])
    assert not InvitationTemplate.objects.exists()


def test_the_preview_button_shows_the_draft_text_and_its_length(manager_client, practice_a):
    page = manager_client.post(editor_url(practice_a), form_data(save="", preview="1")).content.decode()
    bubble, length = sample_on_page(page)
    assert re.fullmatch(rf"Practice A invites you to its patient portal: {TEXT_LINK} Reply STOP to opt out\.", bubble)
    assert length == f"{len(bubble)} of 160 characters"
    assert not InvitationTemplate.objects.exists()


def test_a_text_too_long_to_save_is_still_shown_with_its_length_marked(manager_client, practice_a):
    text = "[Practice Name] " + "x" * 120 + " [Registration Link]"
    page = manager_client.post(editor_url(practice_a), form_data(text_body=text)).content.decode()
    bubble, length = sample_on_page(page)
    assert bubble.startswith("Practice A " + "x" * 120) and len(bubble) > 160
    assert length == f"{len(bubble)} of 160 characters"
    assert 'class="sms-length over"' in page


def test_the_live_preview_gives_the_text_its_length_and_what_stops_a_save(manager_client, practice_a):
    data = manager_client.post(preview_url(practice_a), form_data(save="")).json()
    assert re.fullmatch(rf"Practice A invites you to its patient portal: {TEXT_LINK} Reply STOP to opt out\.", data["sms"]["text"])
    length = len(data["sms"]["text"])
    assert data["sms"] == {
        "text": data["sms"]["text"], "length": length, "limit": 160, "fits": True,
        "cost": f"{length} characters in plain letters (GSM-7: 160 a message, 153 each when split): 1 message per patient.",
    }
    assert data["errors"] == []

    data = manager_client.post(preview_url(practice_a), form_data(text_body="Hello [First Name]")).json()
    assert data["sms"]["text"] == "Hello [First Name]"
    assert "Invitation text: Unknown snippet [First Name]. Use only [Practice Name], [Practice Phone], [Registration Link]." in data["errors"]

    too_long = manager_client.post(preview_url(practice_a), form_data(text_body="x" * 150 + " [Registration Link]")).json()
    assert too_long["sms"]["fits"] is False and too_long["sms"]["length"] > 160
    assert not InvitationTemplate.objects.exists()


def test_the_page_sends_the_text_to_the_live_preview(manager_client, practice_a):
    page = manager_client.get(editor_url(practice_a)).content.decode()
    assert 'data.append("text_body", textBody.value);' in page
    assert 'textBody.addEventListener("input", schedule);' in page


def test_front_desk_cannot_save_a_text(client_a, practice_a):
    assert client_a.post(editor_url(practice_a), form_data()).status_code == 403
    assert client_a.post(preview_url(practice_a), form_data()).status_code == 403
    assert not InvitationTemplate.objects.exists()


def test_another_practices_text_cannot_be_saved_or_previewed(manager_client, practice_a, practice_b):
    InvitationTemplate.objects.create(practice=practice_b, subject="B", html_body="<p>[Registration Link]</p>", text_body="")
    assert manager_client.post(editor_url(practice_b), form_data()).status_code == 404
    assert manager_client.post(preview_url(practice_b), form_data()).status_code == 404
    assert InvitationTemplate.objects.get(practice=practice_b).text_body == ""
    # Naming practice B in practice A's form changes nothing of B's: the page's practice is A.
    response = manager_client.post(editor_url(practice_a), form_data(practice=practice_b.pk))
    assert response.status_code == 302
    assert InvitationTemplate.objects.get(practice=practice_a).text_body == GOOD_TEXT
    assert InvitationTemplate.objects.get(practice=practice_b).text_body == ""
    assert list(AuditEntry.objects.values_list("practice_id", flat=True)) == [practice_a.pk]
