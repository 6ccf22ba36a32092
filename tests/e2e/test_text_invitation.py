"""A patient registers from the text's link, in Chromium on a phone-sized screen, against a live
server and a real Celery worker process: the invitation goes by text (services.invite, what the
front desk's "Send by: text message" calls), the worker sends it (written as a file with no
provider configured; through the real twilio client to the stand-in otherwise), the test reads
the text like the patient's phone would, opens its /t/ link, confirms last name and date of birth,
chooses a password and lands in the portal. Screenshots of each last page: var/screenshots/e2e/."""

import datetime
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from core.sending.text_segments import measure
from invitations import services
from invitations.models.events import EventKind
from invitations.models import Channel, Invitation, Source, Status, TextStatus
from invitations.vocabulary import SendBy
from patients.models import Patient
from tests.core.conftest import _twilio_server, fresh_sms_rate, twilio  # noqa: F401  (fixtures)
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.text_fixtures import TEXT_LINK, written_texts
from tests.workers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
PHONE_SCREEN = {"width": 390, "height": 844}


def texting_patient(mobile: str) -> Patient:
    practice = PracticeFactory(name="Maple Street Dental", contact_phone="(617) 555-0142", text_invitations_enabled=True)
    return PatientFactory(
        practice=practice, first_name="Amara", last_name="Okafor-Smith", date_of_birth=datetime.date(1991, 7, 14),
        email="", mobile_phone=mobile, texting=True,
    )


def invite_by_text(patient: Patient) -> Invitation:
    outcome = services.invite(patient, now=timezone.now(), source=Source.MANUAL, send_by=SendBy.TEXT)
    assert outcome.created, outcome.reasons
    return outcome.invitation


def wait_for_the_text(invitation: Invitation) -> Invitation:
    def queued():
        invitation.refresh_from_db()
        return invitation.text_status == TextStatus.QUEUED

    wait_until(queued, timeout=40, message="the worker to send the text")
    return invitation


def register_from(page, link: str, *, username: str) -> None:
    """The patient's steps, from tapping the link in the text."""
    page.set_viewport_size(PHONE_SCREEN)
    page.goto(link)
    assert "Maple Street Dental invited you to its patient portal" in page.inner_text("main")
    page.fill("#id_last_name", "okafor-smith")  # as typed on a phone
    page.fill("#id_date_of_birth", "1991-07-14")  # the date picker
    page.fill("#id_username", username)
    page.fill("#id_password1", "kettle harbour lantern 7")
    page.fill("#id_password2", "kettle harbour lantern 7")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Hello Amara")


def assert_registered_by_text(invitation: Invitation, page, live_server) -> None:
    assert page.url == f"{live_server.url}/portal/"
    invitation.refresh_from_db()
    assert (invitation.status, invitation.accepted_via) == (Status.ACCEPTED, Channel.TEXT)
    kinds = list(invitation.events.order_by("at", "pk").values_list("kind", "detail"))
    assert (EventKind.LINK_OPENED, "From the text") in kinds
    assert kinds[-1] == (EventKind.ACCEPTED, "With the link in the text")
    assert Patient.objects.get(pk=invitation.patient_id).portal_user.username.startswith("amara")


def test_a_patient_registers_from_the_text_written_as_a_file(page, live_server, start_worker):
    start_worker(SMS_PROVIDER="", PORTAL_SMS_RATE_LIMIT="0")
    invitation = wait_for_the_text(invite_by_text(texting_patient("+16175550161")))

    texts_dir = Path(django_settings.VAR_DIR) / "texts"  # where the worker's FileTransport writes
    [(headers, body)] = [(h, b) for h, b in written_texts(texts_dir) if h["Id"] == invitation.text_sid]
    assert headers["To"] == "+16175550161" and headers["Segments"].startswith("1 (GSM-7")
    assert measure(body).segments == 1 and "Okafor" not in body and "1991" not in body
    link = TEXT_LINK.search(body).group(0)
    assert link.startswith("https://portal.example.test/t/")

    register_from(page, link.replace("https://portal.example.test", live_server.url), username="amara.o")
    assert_registered_by_text(invitation, page, live_server)
    page.goto(link.replace("https://portal.example.test", live_server.url))  # the text, tapped again
    assert "already" in page.inner_text("main").lower()


def test_a_patient_registers_from_the_text_twilio_delivered(page, live_server, start_worker, twilio, fresh_sms_rate):  # noqa: F811
    twilio.configure(callbacks=False)  # the worker's texts call back PORTAL_BASE_URL, not this live server
    start_worker(**twilio.environment(), PORTAL_SMS_RATE_LIMIT="0")
    invitation = wait_for_the_text(invite_by_text(texting_patient("+16175550162")))

    [message] = [m for m in twilio.accepted() if m["to"] == "+16175550162"]
    assert message["sid"] == invitation.text_sid and message["num_segments"] == "1"
    assert message["body"].startswith("Maple Street Dental: set up your patient portal account: ")
    link = TEXT_LINK.search(message["body"]).group(0)

    register_from(page, link.replace("https://portal.example.test", live_server.url), username="amara.twilio")
    assert_registered_by_text(invitation, page, live_server)
