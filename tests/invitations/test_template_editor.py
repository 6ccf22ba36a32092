"""The invitation email editor page: snippets beside the editor, validation with field errors,
sanitising on save, the logo upload, the sample preview, a test email to oneself, roles, scoping."""

import io
import re

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from invitations.admin import template_editor
from invitations.models import InvitationTemplate
from invitations.wording import email_html, invitation_email
from patients.audit import AuditAction, AuditEntry
from tests.clock import NOW
from tests.invitations.patient_admin import editor_url, preview_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

GOOD_BODY = "<p>Hello [First Name],</p><p><a href=\"[Registration Link]\">Join</a> before [Expiry Date].</p>[Logo]"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def image_file(fmt="PNG", size=(40, 20), name="logo.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, "#0b5cad").save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{fmt.lower()}")


def test_the_editor_shows_the_default_wording_the_snippets_and_a_sample_preview(manager_client, practice_a):
    page = manager_client.get(editor_url(practice_a)).content.decode()
    for snippet in email_html.SNIPPETS:
        assert f"<code>{snippet}</code>" in page
    assert "This practice uses the standard wording." in page
    assert "Your patient portal invitation from Practice A" in page  # the preview's subject
    assert "Hello Alex," in page  # the sample patient, inside the escaped srcdoc
    assert 'sandbox srcdoc="' in page


def test_saving_sanitises_the_html_and_is_audited(manager_client, practice_a, manager_a):
    body = GOOD_BODY + '<script>alert("x")</script><p onclick="steal()">Hi</p>'
    response = manager_client.post(editor_url(practice_a), {"subject": "Join [Practice Name] online", "html_body": body, "save": "1"})
    assert response.status_code == 302
    template = InvitationTemplate.objects.get(practice=practice_a)
    assert "<script" not in template.html_body and "alert" not in template.html_body
    assert "onclick" not in template.html_body and "<p>Hi</p>" in template.html_body
    assert template.updated_by == manager_a
    entry = AuditEntry.objects.get(action=AuditAction.TEMPLATE_EDIT)
    assert entry.practice_id == practice_a.pk and "subject" in entry.summary


def test_a_template_without_the_registration_link_gets_a_field_error_and_is_not_saved(manager_client, practice_a):
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Hello", "html_body": "<p>Hello [First Name]</p>", "save": "1"}
    )
    assert response.status_code == 200
    assert "Add [Registration Link]" in str(response.context["form"].errors["html_body"])
    assert not InvitationTemplate.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "subject, body, field, message",
    [
        ("Hi [First Name]", GOOD_BODY, "subject", "cannot be used in the subject"),
        ("Hi", GOOD_BODY + "[Date Of Birth]", "html_body", "Unknown snippet [Date Of Birth]"),
        ("Hi {{ patient }}", GOOD_BODY, "subject", "are not supported"),
    ],
)
def test_other_invalid_templates_get_field_errors(manager_client, practice_a, subject, body, field, message):
    response = manager_client.post(editor_url(practice_a), {"subject": subject, "html_body": body, "save": "1"})
    assert message in str(response.context["form"].errors[field])
    assert not InvitationTemplate.objects.exists()


def test_the_preview_shows_unsaved_edits_without_saving_them(manager_client, practice_a):
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Draft [Practice Name]", "html_body": GOOD_BODY + "<p>New words</p>", "preview": "1"}
    )
    rendered = response.context["rendered"]
    assert rendered.subject == "Draft Practice A"
    assert "New words" in rendered.html and "Hello Alex," in rendered.html
    assert "https://portal.example.test/invite/SAMPLE-LINK-FOR-PREVIEW/" in rendered.text
    assert not InvitationTemplate.objects.exists()


def test_send_a_test_email_to_me(manager_client, practice_a):
    manager_client.post(editor_url(practice_a), {"subject": "Draft [Practice Name]", "html_body": GOOD_BODY, "send_test": "1"})
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["manager@staff.example"]
    assert message.subject == "[Test] Draft Practice A"
    assert "Hello Alex," in message.body and "Hello Alex," in message.alternatives[0][0]
    assert not InvitationTemplate.objects.exists()


def test_a_test_email_the_service_refuses_says_why_and_keeps_the_draft(manager_client, practice_a, use_provider):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Draft [Practice Name]", "html_body": GOOD_BODY, "send_test": "1"}, follow=True
    )
    assert response.status_code == 200
    text = [str(m) for m in response.context["messages"]]
    assert any(m.startswith("The test email could not be sent: the email service answered AnymailRequestsAPIError (HTTP 401)") for m in text)
    assert not InvitationTemplate.objects.exists()


def test_the_logo_is_uploaded_once_and_placed_by_the_logo_snippet(manager_client, practice_a):
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY, "logo": image_file(), "save": "1"}
    )
    assert response.status_code == 302
    practice_a.refresh_from_db()
    assert practice_a.logo.name.startswith("practice-logos/logo")
    rendered = invitation_email.render(practice=practice_a, first_name="Ann", link="https://x.test/l", expires_at=NOW)
    assert f'<img src="https://portal.example.test/media/{practice_a.logo.name}"' in rendered.html


@pytest.mark.parametrize(
    "upload, message",
    [
        (SimpleUploadedFile("logo.png", b"not an image at all", content_type="image/png"), "Upload a valid image"),
        (image_file("BMP", name="logo.bmp"), "PNG, JPEG or GIF"),
    ],
)
def test_a_logo_of_the_wrong_type_is_refused(manager_client, practice_a, upload, message):
    response = manager_client.post(editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY, "logo": upload, "save": "1"})
    assert message in str(response.context["form"].errors["logo"])
    practice_a.refresh_from_db()
    assert not practice_a.logo


def test_a_logo_over_the_size_limit_is_refused(manager_client, practice_a, monkeypatch):
    monkeypatch.setattr(template_editor, "LOGO_MAX_BYTES", 100)
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY, "logo": image_file(size=(200, 200)), "save": "1"}
    )
    assert "the limit is 0 KB" in str(response.context["form"].errors["logo"])


def test_front_desk_cannot_edit_the_template(client_a, practice_a):
    assert client_a.get(editor_url(practice_a)).status_code == 403
    assert client_a.post(editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY, "save": "1"}).status_code == 403


def test_another_practices_editor_is_404(manager_client, practice_b):
    assert manager_client.get(editor_url(practice_b)).status_code == 404
    assert manager_client.post(editor_url(practice_b), {"subject": "Hi", "html_body": GOOD_BODY, "save": "1"}).status_code == 404


# -- what the sanitiser removed ---------------------------------------------------------------

UNSAFE = '<script>alert("x")</script><p onclick="steal()">Hi</p><a href="javascript:alert(1)">Bad</a>'


def test_the_sanitiser_report_names_a_script_an_onclick_and_a_javascript_link():
    assert email_html.removed_by_sanitiser(GOOD_BODY + UNSAFE) == [
        "<script> removed: emails cannot run scripts",
        "onclick on <p> removed: emails cannot run scripts",
        "a javascript: link removed from <a>: emails cannot run scripts",
    ]


def test_the_sanitiser_report_names_style_properties_forms_and_comments_and_counts_repeats():
    body = (
        '<!-- draft --><div style="color: red; position: fixed">A</div><form><p class="x">B</p></form>'
        '<p onclick="a()">C</p><p onclick="b()">D</p>'
    )
    assert email_html.removed_by_sanitiser(body) == [
        "style property position removed: not supported in the email",
        "<form> removed: emails cannot hold forms",
        'class on <p> removed: use style="..." on the element instead',
        "onclick on <p> removed: emails cannot run scripts (2 times)",
        "HTML comments <!-- --> removed: they are not sent",
    ]


def test_the_sanitiser_report_is_empty_for_markup_the_email_keeps():
    assert email_html.removed_by_sanitiser(email_html.DEFAULT_HTML_BODY) == []
    assert email_html.removed_by_sanitiser(GOOD_BODY + '<a href="mailto:desk@a.example">Mail us</a>') == []


def test_saving_says_what_the_sanitiser_removed_and_keeps_the_safe_version(manager_client, practice_a):
    response = manager_client.post(
        editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY + UNSAFE, "save": "1"}, follow=True
    )
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert len(warnings) == 1
    assert "left out of the saved version" in warnings[0]
    assert "<script> removed: emails cannot run scripts" in warnings[0]
    assert "onclick on <p> removed" in warnings[0] and "a javascript: link removed from <a>" in warnings[0]
    template = InvitationTemplate.objects.get(practice=practice_a)
    assert "<script" not in template.html_body and "javascript" not in template.html_body and "<p>Hi</p>" in template.html_body


def test_saving_clean_markup_gives_no_warning(manager_client, practice_a):
    response = manager_client.post(editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY, "save": "1"}, follow=True)
    assert [m.level_tag for m in response.context["messages"]] == ["success"]


def test_the_preview_button_lists_what_saving_would_remove_beside_the_preview(manager_client, practice_a):
    response = manager_client.post(editor_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY + UNSAFE, "preview": "1"})
    assert response.context["removed"][0] == "<script> removed: emails cannot run scripts"
    assert "<li>&lt;script&gt; removed: emails cannot run scripts</li>" in response.content.decode()
    assert not InvitationTemplate.objects.exists()


# -- the live preview -------------------------------------------------------------------------


def test_the_live_preview_renders_the_draft_with_the_sample_patient(manager_client, practice_a):
    response = manager_client.post(
        preview_url(practice_a), {"subject": "Join [Practice Name]", "html_body": GOOD_BODY + UNSAFE}
    )
    assert response.status_code == 200
    data = response.json()
    assert data["subject"] == "Join Practice A"
    assert "Hello Alex," in data["html"] and "<script" not in data["html"]
    assert 'href="https://portal.example.test/invite/SAMPLE-LINK-FOR-PREVIEW/"' in data["html"]
    assert "Join: https://portal.example.test/invite/SAMPLE-LINK-FOR-PREVIEW/" in data["text"]
    assert data["removed"] == email_html.removed_by_sanitiser(GOOD_BODY + UNSAFE)
    assert data["errors"] == []
    assert not InvitationTemplate.objects.exists()


def test_the_live_preview_says_what_would_stop_a_save(manager_client, practice_a):
    data = manager_client.post(preview_url(practice_a), {"subject": "Hi", "html_body": "<p>Hello [First Name]</p>"}).json()
    assert "Hello Alex" in data["html"]
    assert any(e.startswith("Email body (HTML): Add [Registration Link]") for e in data["errors"])


def test_the_live_preview_is_post_only(manager_client, practice_a):
    assert manager_client.get(preview_url(practice_a)).status_code == 405


def test_the_live_preview_needs_the_csrf_token(manager_a, practice_a):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(manager_a)
    body = {"subject": "Hi", "html_body": GOOD_BODY}
    assert client.post(preview_url(practice_a), body).status_code == 403
    client.get(editor_url(practice_a))
    token = client.cookies["csrftoken"].value
    assert client.post(preview_url(practice_a), {**body, "csrfmiddlewaretoken": token}).status_code == 200


def test_front_desk_cannot_use_the_live_preview(client_a, practice_a):
    assert client_a.post(preview_url(practice_a), {"subject": "Hi", "html_body": GOOD_BODY}).status_code == 403


def test_another_practices_live_preview_is_404(manager_client, practice_b):
    assert manager_client.post(preview_url(practice_b), {"subject": "Hi", "html_body": GOOD_BODY}).status_code == 404


# -- snippet buttons and the page's script ----------------------------------------------------


def test_the_page_has_snippet_buttons_and_its_script_carries_the_nonce(manager_client, practice_a):
    response = manager_client.get(editor_url(practice_a))
    page = response.content.decode()
    body_buttons, subject_buttons = (
        re.search(rf'data-snippets-for="id_{name}" hidden>(.*?)</div>', page, re.S).group(1) for name in ("html_body", "subject")
    )
    for snippet in email_html.SNIPPETS:
        assert f'<button type="button" data-snippet="{snippet}"' in body_buttons
    assert re.findall(r'data-snippet="([^"]+)"', subject_buttons) == ["[Practice Name]"]
    nonce = re.search(r'<script nonce="([^"]+)">', page).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    assert f'data-preview-url="{preview_url(practice_a)}"' in page
    assert "onclick=" not in page and "oninput=" not in page
