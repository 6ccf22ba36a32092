"""The invitation email template: snippets, validation, sanitising, the practice's own wording."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from invitations import services
from invitations.wording import invitation_email
from invitations.wording import email_html
from invitations.models import InvitationTemplate, Source
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db
EXPIRES = datetime.datetime(2026, 3, 9, 15, 0, tzinfo=datetime.timezone.utc)


def test_values_are_escaped_so_a_name_cannot_inject_markup():
    practice = PracticeFactory(name="Smith & Sons <Dental>")
    rendered = invitation_email.render(practice=practice, first_name="<script>x</script>", link="https://p.test/invite/t/", expires_at=EXPIRES)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "Smith &amp; Sons &lt;Dental&gt;" in rendered.html
    assert rendered.subject == "Your patient portal invitation from Smith & Sons <Dental>"
    assert "Smith & Sons <Dental>" in rendered.text  # plain text is not HTML-escaped


def test_the_expiry_date_is_in_the_practice_time_zone():
    late = datetime.datetime(2026, 3, 10, 2, 30, tzinfo=datetime.timezone.utc)  # 9 March in the evening in New York
    practice = PracticeFactory(time_zone="America/New_York")
    assert "Monday, March 9, 2026" in invitation_email.render(practice=practice, first_name="A", link="x", expires_at=late).text
    practice.time_zone = "Europe/Berlin"
    assert "Tuesday, March 10, 2026" in invitation_email.render(practice=practice, first_name="A", link="x", expires_at=late).text


def test_the_logo_snippet_shows_the_practice_logo_with_an_absolute_address(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    practice = PracticeFactory(name="Logo Dental")
    practice.logo = SimpleUploadedFile("logo.png", b"\x89PNG\r\n\x1a\n", content_type="image/png")
    practice.save()
    rendered = invitation_email.render(practice=practice, first_name="A", link="x", expires_at=EXPIRES)
    assert '<img src="https://portal.example.test/media/practice-logos/logo' in rendered.html
    assert 'alt="Logo Dental"' in rendered.html
    without = invitation_email.render(practice=PracticeFactory(), first_name="A", link="x", expires_at=EXPIRES)
    assert "<img" not in without.html


@pytest.mark.parametrize(
    "subject,body,field,words",
    [
        ("Hi", "<p>no link</p>", "html_body", "Add [Registration Link]"),
        ("Hi", "[Registration Link] [Last Name]", "html_body", "Unknown snippet [Last Name]"),
        ("Hi", "[Registration Link] {{ patient.date_of_birth }}", "html_body", "{{ }} and {% %} are not supported"),
        ("Hi\nBcc: x@evil.example", "[Registration Link]", "subject", "must not contain newlines"),
        ("Hello [First Name]", "[Registration Link]", "subject", "cannot be used in the subject"),
    ],
)
def test_template_validation_names_the_field_and_the_fix(subject, body, field, words):
    with pytest.raises(ValidationError) as error:
        email_html.validate_template(subject=subject, html_body=body)
    assert any(words in message for message in error.value.message_dict[field])


def test_the_default_template_is_valid():
    email_html.validate_template(subject=email_html.DEFAULT_SUBJECT, html_body=email_html.DEFAULT_HTML_BODY)
    assert email_html.sanitise_html(email_html.DEFAULT_HTML_BODY).count("[Registration Link]") == 2


def test_saving_a_template_sanitises_its_html():
    practice = PracticeFactory()
    template = InvitationTemplate.objects.create(
        practice=practice,
        subject="  Welcome  from [Practice Name] ",
        html_body='<p style="color: red; position: fixed">Hi</p><iframe src="x"></iframe>'
        '<a href="javascript:alert(1)">bad</a><a href="[Registration Link]">Go</a>',
    )
    assert template.subject == "Welcome from [Practice Name]"
    assert "iframe" not in template.html_body and "javascript" not in template.html_body
    assert "position" not in template.html_body and "color:red" in template.html_body
    assert 'href="[Registration Link]"' in template.html_body


def test_a_practice_template_is_used_for_its_invitations(django_capture_on_commit_callbacks):
    from django.core import mail

    practice = PracticeFactory(name="Riverside Aesthetics")
    InvitationTemplate.objects.create(
        practice=practice,
        subject="[Practice Name]: your portal",
        html_body="<h1>Hi [First Name]!</h1><p>Join us: <a href=\"[Registration Link]\">register</a> by [Expiry Date].</p>",
    )
    patient = PatientFactory(practice=practice, first_name="Noah")
    invitation = services.invite(patient, now=NOW, source=Source.MANUAL).invitation
    services.deliver(invitation.pk, now=NOW)
    message = mail.outbox[0]
    assert message.subject == "Riverside Aesthetics: your portal"
    assert "Hi Noah!" in message.body and "register: https://portal.example.test/invite/" in message.body
    assert "<h1>Hi Noah!</h1>" in message.alternatives[0][0]
    assert "Monday, March 9, 2026" in message.body
