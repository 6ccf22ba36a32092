"""The portal home shows the numbers the practice has (the mobile it texts included) and offers
email preferences only to a patient with an email address."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def signed_in(client, **fields) -> str:
    user = get_user_model().objects.create_user("pat.one", password="a long portal passphrase 7")
    PatientFactory(portal_user=user, registered_at=timezone.now(), **fields)
    client.force_login(user)
    return client.get(reverse("portal:home")).content.decode()


def test_a_patient_texted_on_their_mobile_sees_it(client):
    page = signed_in(client, email="", phone="", mobile_phone="+16175550123")
    assert "<dt>Mobile phone</dt><dd>(617) 555-0123</dd>" in page
    details = page.split("<h2>")[1]  # the patient's details, before "Contact the practice"
    assert "<dt>Phone</dt>" not in details and "—" not in details
    assert reverse("portal:email_preferences") not in page  # no address: nothing to stop


def test_a_patient_with_an_address_and_a_home_phone_sees_both_and_email_preferences(client):
    page = signed_in(client, email="ann@example.com", phone="(617) 555-0142", mobile_phone="")
    assert "<dt>Phone</dt><dd>(617) 555-0142</dd>" in page and "Mobile phone" not in page
    assert reverse("portal:email_preferences") in page
    assert Patient.objects.count() == 1
