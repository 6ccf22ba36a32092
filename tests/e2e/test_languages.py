"""A Spanish-speaking patient registers from the link in their text, in Chromium on a phone-sized
screen, with a real worker sending the text: the page opens in Spanish, the switch goes to English
and back (the address stays the link), the date is typed day first, and the portal greets them in
Spanish."""

from pathlib import Path

import pytest
from django.conf import settings as django_settings

from invitations.models import Status
from patients.models import Patient
from tests.e2e.accessibility import violations
from tests.e2e.test_text_invitation import PHONE_SCREEN, invite_by_text, texting_patient, wait_for_the_text
from tests.invitations.text_fixtures import TEXT_LINK, written_texts
from tests.workers import mail_dir, start_worker  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_spanish_speaker_registers_from_the_text_and_switches_to_english_and_back(page, live_server, start_worker):
    start_worker(SMS_PROVIDER="", PORTAL_SMS_RATE_LIMIT="0")
    patient = texting_patient("+16175550181")
    Patient.objects.filter(pk=patient.pk).update(preferred_language="es")
    invitation = wait_for_the_text(invite_by_text(Patient.objects.get(pk=patient.pk)))
    [(_, body)] = [(h, b) for h, b in written_texts(Path(django_settings.VAR_DIR) / "texts") if h["Id"] == invitation.text_sid]
    assert body.startswith("Maple Street Dental: cree su cuenta del portal: ")
    link = TEXT_LINK.search(body).group(0).replace("https://portal.example.test", live_server.url)

    page.set_viewport_size(PHONE_SCREEN)
    page.goto(link)
    assert page.get_attribute("html", "lang") == "es"
    assert page.inner_text("h1") == "Cree su cuenta del portal"
    page.click("footer button[value=en]")
    page.wait_for_selector("h1:text('Set up your portal account')")
    assert page.url == link and page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#id_date_of_birth_helptext") == "Month, day and year, for example 05/17/1980."
    page.click("footer button[value=es]")
    page.wait_for_selector("h1:text('Cree su cuenta del portal')")
    assert page.url == link and violations(page) == []

    page.fill("#id_last_name", "okafor-smith")
    page.fill("#id_date_of_birth", "14/07/1991")  # day first, as the Spanish hint says
    page.fill("#id_username", "amara.o")
    page.fill("#id_password1", "kettle harbour lantern 7")
    page.fill("#id_password2", "kettle harbour lantern 7")
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Hola, Amara")
    assert "Su cuenta del portal está lista. ¡Bienvenido!" in page.inner_text("main")
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED
    assert Patient.objects.get(pk=patient.pk).preferred_language == "es"
