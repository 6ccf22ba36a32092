"""The patient's pages in Chromium: what the test client cannot see (Origin headers, date inputs).

Written with the invitations work (issue 3); lives here to share the session-wide browser fixture."""

import datetime

import pytest
from django.contrib.auth import get_user_model

from invitations.models import Status
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import invitation_with_token
from tests.workers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_patient_registers_from_the_link_on_a_phone_and_signs_in_again(page, live_server):
    page.set_viewport_size({"width": 390, "height": 844})
    practice = PracticeFactory(name="Maple Street Dental")
    patient = PatientFactory(practice=practice, first_name="Zoë", last_name="Quintanilla", date_of_birth=datetime.date(1984, 11, 3))
    now = datetime.datetime.now(datetime.timezone.utc)
    invitation, token = invitation_with_token(patient=patient, created_at=now)

    page.goto(f"{live_server.url}/invite/{token}/")
    assert page.get_attribute("meta[name=viewport]", "content").startswith("width=device-width")
    # One wrong answer first: the same friendly message, nothing lost but the passwords.
    page.fill("#id_last_name", "Quintana")
    page.fill("#id_date_of_birth", "1984-11-03")
    page.fill("#id_username", "zoe.q")
    page.fill("#id_password1", "sunny garden path 77")
    page.fill("#id_password2", "sunny garden path 77")
    page.click("button[type=submit]")
    assert "could not confirm your details" in page.inner_text("[role=alert]")
    assert page.input_value("#id_username") == "zoe.q"

    page.fill("#id_last_name", " quintanilla ")
    page.fill("#id_password1", "sunny garden path 77")
    page.fill("#id_password2", "sunny garden path 77")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Hello Zoë")
    assert page.url == f"{live_server.url}/portal/"
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED
    assert get_user_model().objects.get(username="zoe.q").patient_record == patient

    page.click("text=Sign out")
    page.wait_for_selector("#id_username")
    page.fill("#id_username", "zoe.q")
    page.fill("#id_password", "sunny garden path 77")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Hello Zoë")


def test_a_patient_asks_for_access_in_the_browser(page, live_server, celery_worker):
    practice = PracticeFactory(name="Riverside Aesthetics", self_signup_enabled=True)
    page.goto(f"{live_server.url}/practices/{practice.pk}/request-access/")
    page.fill("#id_first_name", "Noah")
    page.fill("#id_last_name", "Kim")
    page.fill("#id_date_of_birth", "1990-02-03")
    page.fill("#id_email", "noah.kim@example.com")
    page.fill("#id_zip_code", "60601")
    page.select_option("#id_birth_sex", "M")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your email")
    # A worker matches the chart or makes one, after the page answered (the page's time tells nothing).
    wait_until(lambda: practice.patients.exists(), timeout=30, message="the worker to handle the access request")
    assert practice.patients.get().self_signup_unverified
