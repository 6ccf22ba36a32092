"""Invitations in the patient's language: the email and the text of a single send and of a bulk
run are written in each patient's language (the worker's own never leaks in), the practice writes
a version per language and a missing one falls back to the practice's language, which the editor
and Activate Now's preview say."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import translation

from invitations.bulk import chunks, runs
from invitations.models import Invitation, InvitationTemplate
from invitations.vocabulary import SendBy
from invitations.wording import invitation_text
from patients.models import BulkChannels, Role
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.invitations.text_fixtures import invite_now, text_files, written_texts  # noqa: F401  (fixtures)
from tests.portal.test_languages import assert_no_english

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


@pytest.fixture
def two_channel_practice():
    return PracticeFactory(
        name="Maple Street Dental", contact_phone="(617) 555-0142", text_invitations_enabled=True,
        bulk_channels=BulkChannels.BOTH,
    )


def patient_speaking(practice, language, number):
    return PatientFactory(
        practice=practice, first_name=f"P{number}", preferred_language=language, email=f"p{number}@example.com",
        mobile_phone=f"+1617555{number:04d}", texting=True,
    )


def email_to(address):
    [message] = [m for m in mail.outbox if m.to == [address]]
    return message


def text_to(folder, number):
    return [body for headers, body in written_texts(folder) if headers.get("To") == number]


def test_a_single_invitation_is_written_in_the_patients_language_whatever_the_worker_speaks(two_channel_practice, invite_now, text_files):
    spanish, english = patient_speaking(two_channel_practice, "es", 1), patient_speaking(two_channel_practice, "en", 2)
    with translation.override("en"):  # the worker's own language
        invite_now(spanish, SendBy.BOTH)
        invite_now(english, SendBy.BOTH)
    message = email_to("p1@example.com")
    assert message.subject == "Su invitación al portal del paciente de Maple Street Dental"
    assert "Hola, P1:" in message.body and "lunes, 9 de marzo de 2026" in message.body
    assert_no_english(message.body, "the Spanish email")
    assert_no_english(message.alternatives[0][0], "the Spanish email's HTML")
    assert email_to("p2@example.com").subject == "Your patient portal invitation from Maple Street Dental"
    [spanish_text] = text_to(text_files, "+16175550001")
    assert spanish_text.startswith("Maple Street Dental: cree su cuenta del portal: https://portal.example.test/t/")
    assert invitation_text.fits(spanish_text)  # one GSM-7 message
    [english_text] = text_to(text_files, "+16175550002")
    assert "Reply STOP to opt out." in english_text
    assert Invitation.objects.get(patient=spanish).language == "es"


def test_a_bulk_chunk_writes_each_patient_in_their_language(two_channel_practice, django_capture_on_commit_callbacks, text_files):
    patients = [patient_speaking(two_channel_practice, "es" if number % 2 else "en", number) for number in range(1, 7)]
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=two_channel_practice, now=NOW)
    assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "done"
    for number, someone in enumerate(patients, start=1):
        message = email_to(someone.email)
        [text] = text_to(text_files, someone.mobile_phone)
        if someone.preferred_language == "es":
            assert message.subject.startswith("Su invitación") and "Responda STOP" in text
            assert_no_english(message.body, f"patient {number}'s email")
        else:
            assert message.subject.startswith("Your patient portal invitation") and "Reply STOP" in text
    assert set(Invitation.objects.values_list("patient__preferred_language", "language")) == {("es", "es"), ("en", "en")}


def test_a_language_the_practice_has_not_written_falls_back_to_the_practices_language(two_channel_practice, django_capture_on_commit_callbacks):
    InvitationTemplate.objects.create(
        practice=two_channel_practice, language="en", subject="[Practice Name]: your portal", html_body="<p>Join: [Registration Link]</p>",
    )
    spanish = patient_speaking(two_channel_practice, "es", 1)
    assert InvitationTemplate.falls_back(two_channel_practice, "es") and not InvitationTemplate.falls_back(two_channel_practice, "en")
    [fallback] = runs.language_fallbacks(two_channel_practice, now=NOW)
    assert fallback.message == "1 patient prefers Spanish; the Spanish email is not written yet, they will get English."
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.start_run(practice=two_channel_practice, now=NOW)
    chunks.process_chunk(run.chunks.get().pk, now=NOW)
    message = email_to(spanish.email)
    assert message.subject == "Maple Street Dental: your portal"
    # Once written, the Spanish version is theirs, and nothing falls back any more.
    InvitationTemplate.objects.create(
        practice=two_channel_practice, language="es", subject="[Practice Name]: su portal", html_body="<p>[Registration Link]</p>",
    )
    assert runs.language_fallbacks(two_channel_practice, now=NOW) == []
    assert InvitationTemplate.choose(two_channel_practice, "es").subject == "[Practice Name]: su portal"


def test_without_wording_of_its_own_a_practice_sends_the_shipped_wording_in_each_language(two_channel_practice):
    assert runs.language_fallbacks(two_channel_practice, now=NOW) == []
    assert InvitationTemplate.choose(two_channel_practice, "es").subject == "Su invitación al portal del paciente de [Practice Name]"
    assert InvitationTemplate.choose(two_channel_practice, "en").subject == "Your patient portal invitation from [Practice Name]"


def test_the_language_help_notice_goes_in_the_email_footer(two_channel_practice, invite_now):
    two_channel_practice.language_assistance_notice = True
    two_channel_practice.save()
    invite_now(patient_speaking(two_channel_practice, "en", 1), SendBy.EMAIL)
    body = email_to("p1@example.com").body
    assert "Language assistance services are available to you free of charge. Call (617) 555-0142." in body
    assert "ATENCIÓN: si habla español" in body and "Llame al (617) 555-0142." in body
    two_channel_practice.language_assistance_text = "Free interpreters: call us.\nIntérpretes gratis: llámenos."
    two_channel_practice.save()
    invite_now(patient_speaking(two_channel_practice, "es", 2), SendBy.EMAIL)
    body = email_to("p2@example.com").body
    assert "Free interpreters: call us.\nIntérpretes gratis: llámenos." in body and "ATENCIÓN" not in body


# -- the editor ----------------------------------------------------------------------------------


@pytest.fixture
def bilingual_manager_client(client, two_channel_practice):
    client.force_login(staff_member(two_channel_practice, Role.MANAGER))
    return client


def editor(practice, language=""):
    return reverse("admin:invitations_portal_template", args=[practice.pk]) + (f"?language={language}" if language else "")


def test_the_editor_has_a_version_per_language_and_says_which_falls_back(bilingual_manager_client, two_channel_practice):
    InvitationTemplate.objects.create(practice=two_channel_practice, language="en", subject="Hi from [Practice Name]", html_body="<p>[Registration Link]</p>")
    page = bilingual_manager_client.get(editor(two_channel_practice, "es")).content.decode()
    assert "Spanish (not written yet)" in page and 'aria-current="page" class="current">Spanish' in page
    assert "patients who prefer Spanish get the English version until you save this one" in page
    assert 'value="Su invitación al portal del paciente de [Practice Name]"' in page  # starts from the shipped Spanish
    assert "Maple Street Dental: cree su cuenta del portal: " in page  # the text's sample in Spanish
    saved = bilingual_manager_client.post(editor(two_channel_practice), {
        "language": "es", "subject": "Su portal en [Practice Name]", "html_body": "<p>Hola [First Name]: [Registration Link] vence el [Expiry Date]</p>",
        "text_body": "", "save": "Save",
    })
    assert saved.status_code == 302 and saved["Location"] == editor(two_channel_practice, "es")
    assert set(InvitationTemplate.objects.filter(practice=two_channel_practice).values_list("language", "subject")) == {
        ("en", "Hi from [Practice Name]"), ("es", "Su portal en [Practice Name]"),
    }
    page = bilingual_manager_client.get(editor(two_channel_practice, "es")).content.decode()
    assert "not written yet" not in page and "Hola Alex: " in page and "de 2026" in page


def test_the_live_preview_writes_the_version_in_its_language(bilingual_manager_client, two_channel_practice):
    response = bilingual_manager_client.post(
        reverse("admin:invitations_portal_template_preview", args=[two_channel_practice.pk]),
        {"language": "es", "subject": "Hola", "html_body": "<p>[Registration Link] vence el [Expiry Date]</p>", "text_body": "Ñandú [Practice Name] á [Registration Link] STOP"},
    ).json()
    assert re.search(r"vence el \w+, \d+ de \w+ de \d{4}", response["html"])
    assert "UCS-2" in response["sms"]["cost"] and response["sms"]["fits"] is False
    assert any("In Spanish write a, i, o, u for á, í, ó, ú" in error for error in response["errors"])


def test_activate_nows_preview_names_the_patients_who_will_get_another_language(bilingual_manager_client, two_channel_practice):
    InvitationTemplate.objects.create(practice=two_channel_practice, language="en", subject="Hi [Practice Name]", html_body="<p>[Registration Link]</p>")
    for number in range(1, 4):
        patient_speaking(two_channel_practice, "es", number)
    patient_speaking(two_channel_practice, "en", 9)
    page = bilingual_manager_client.get(reverse("admin:invitations_portal_activate", args=[two_channel_practice.pk])).content.decode()
    assert "3 patients prefer Spanish; the Spanish email is not written yet, they will get English." in page
    other = PracticeFactory()
    assert runs.language_fallbacks(other, now=NOW) == []
