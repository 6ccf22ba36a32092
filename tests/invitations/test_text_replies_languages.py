"""Replies in the patient's language: the Spanish opt-out, opt-in and help words act like Twilio's
English ones (Twilio does not know them without Advanced Opt-Out, so we confirm the opt-out
ourselves), and HELP and the confirmation are answered in the patient's language, in GSM-7."""

import pytest
from django.urls import reverse

from invitations.texts import replies
from invitations.vocabulary import SendBy
from invitations.wording import invitation_text
from patients.models import Patient, SmsOptOut
from tests.factories import PracticeFactory
from tests.invitations.text_fixtures import (  # noqa: F401  (fixtures)
    MOBILE,
    _twilio_server,
    fresh_sms_rate,
    invite_now,
    patient,
    post_as_twilio,
    texting,
    texting_practice,
    twilio,
)
from tests.twilio_standin import inbound_params

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
PATH = reverse("invitations:twilio_replies")


def reply_text(client, body, **fields):
    return post_as_twilio(client, PATH, inbound_params(from_=MOBILE, body=body, **fields)).content.decode()


@pytest.fixture
def spanish(patient):
    Patient.objects.filter(pk=patient.pk).update(preferred_language="es")
    patient.refresh_from_db()
    return patient


@pytest.mark.parametrize("body", ["PARAR", "parar", " Alto. ", "cancelar!", "BAJA", "Detener"])
def test_a_spanish_opt_out_word_opts_the_number_out_and_is_confirmed_in_spanish(client, texting, spanish, invite_now, body):
    invite_now(spanish, SendBy.TEXT)
    answer = reply_text(client, body)
    assert SmsOptOut.objects.filter(phone=MOBILE, practice=spanish.practice).exists()
    assert "<Message>Ya no le enviaremos mensajes de Maple Street Dental. Responda START para volver a recibirlos.</Message>" in answer
    assert not invite_now(spanish, SendBy.TEXT).created  # the next text is refused
    reply_text(client, "INICIAR")
    assert not SmsOptOut.objects.filter(phone=MOBILE).exists()


def test_when_twilio_knows_the_word_it_confirms_and_we_stay_silent(client, texting, spanish, invite_now):
    invite_now(spanish, SendBy.TEXT)
    answer = reply_text(client, "PARAR", opt_out_type="STOP")  # Advanced Opt-Out with the Spanish words
    assert SmsOptOut.objects.filter(phone=MOBILE).exists() and "<Message>" not in answer


def test_help_is_answered_in_the_patients_language(client, texting, spanish, invite_now):
    invite_now(spanish, SendBy.TEXT)
    for body in ("HELP", "ayuda", "Información"):
        answer = reply_text(client, body)
        assert "<Message>Maple Street Dental: invitaciones al portal del paciente. ¿Preguntas? Llame al (617) 555-0142. " \
               "Responda STOP para cancelar.</Message>" in answer, body


def test_an_english_speaker_asking_in_spanish_is_answered_in_spanish(client, texting, patient, invite_now):
    invite_now(patient, SendBy.TEXT)
    assert "invitaciones al portal del paciente" in reply_text(client, "AYUDA")
    assert "patient portal invitations" in reply_text(client, "HELP")


def test_every_answer_in_every_language_is_one_plain_text():
    practice = PracticeFactory.build(name="Clinica Dental Familiar del Valle de San Fernando", contact_phone="(818) 555-0142")
    for language in ("en", "es"):
        for answer in (replies.help_text(practice, language), replies.help_text(None, language),
                       replies.stop_confirmation([practice], language), replies.stop_confirmation([], language)):
            assert invitation_text.fits(answer), (language, answer)
