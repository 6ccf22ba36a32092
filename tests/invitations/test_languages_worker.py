"""A real Celery worker writes each patient's invitation in their language: in one Activate Now
run, the Spanish patient's email and text are in Spanish and the English patient's stay English,
whatever language the worker process itself runs in."""

import email
import email.policy
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRunStatus
from patients.models import BulkChannels
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.text_fixtures import written_texts
from tests.portal.test_languages import assert_no_english
from tests.workers import mail_dir, read_mail, start_worker, wait_until  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def parsed(raw: str) -> tuple[str, str, str]:
    """(subject, text, html) of an email the worker's file backend wrote."""
    message = email.message_from_string(raw.strip(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return str(message["Subject"]).strip(), text, html


def test_a_real_worker_writes_each_patients_email_and_text_in_their_language(start_worker, mail_dir):
    practice = PracticeFactory(
        name="Maple Street Dental", contact_phone="(617) 555-0142", text_invitations_enabled=True, bulk_channels=BulkChannels.BOTH,
    )
    ana = PatientFactory(practice=practice, first_name="Ana", email="ana@example.com", mobile_phone="+16175550171",
                         texting=True, preferred_language="es")
    tom = PatientFactory(practice=practice, first_name="Tom", email="tom@example.com", mobile_phone="+16175550172",
                         texting=True, preferred_language="en")
    start_worker(SMS_PROVIDER="", PORTAL_SMS_RATE_LIMIT="0")  # the worker runs in the default language, English
    run = runs.start_run(practice=practice, now=timezone.now(), plan_later=True)

    def done() -> bool:
        run.refresh_from_db()
        return run.status == BulkRunStatus.DONE

    wait_until(done, timeout=90, message="the run to finish")
    subject, text, html = parsed(read_mail(mail_dir, to=ana.email))
    assert subject == "Su invitación al portal del paciente de Maple Street Dental"
    assert text.startswith("Hola, Ana:") and " de 20" in text
    assert_no_english(text, "the Spanish email")
    assert_no_english(html, "the Spanish email's HTML")
    subject, text, _ = parsed(read_mail(mail_dir, to=tom.email))
    assert subject == "Your patient portal invitation from Maple Street Dental" and text.startswith("Hello Tom,")

    texts = dict(
        (headers["To"], body) for headers, body in written_texts(Path(django_settings.VAR_DIR) / "texts")
        if headers["To"] in (ana.mobile_phone, tom.mobile_phone)
    )
    assert texts[ana.mobile_phone].startswith("Maple Street Dental: cree su cuenta del portal: ")
    assert texts[ana.mobile_phone].endswith("Responda STOP para cancelar.")
    assert texts[tom.mobile_phone].endswith("Reply STOP to opt out.")
