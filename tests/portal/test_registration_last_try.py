"""Before the wrong answer that voids a link, the registration page warns the patient: once, on
the page after the fourth wrong answer (and when the link is opened again then), in the
patient's language; never which detail was wrong."""

import datetime

import pytest
from django.urls import reverse

from invitations.models import MAX_FAILED_ATTEMPTS, Invitation
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
WARNING = "after one more wrong answer this link stops working"


@pytest.fixture
def nunez_invited():
    practice = PracticeFactory(name="Maple Street Dental")
    patient = PatientFactory(practice=practice, last_name="Núñez", date_of_birth=datetime.date(1975, 1, 31))
    return invitation_with_token(patient=patient)


def wrong(client, token):
    return client.post(reverse("portal:register", args=[token]), {
        "last_name": "Nobody", "date_of_birth": "01/31/1975", "username": "jose.n",
        "password1": "correct horse battery 42", "password2": "correct horse battery 42",
    })


def test_the_page_warns_before_the_answer_that_voids_the_link(client, nunez_invited):
    invitation, token = nunez_invited
    for attempt in range(1, MAX_FAILED_ATTEMPTS):
        page = wrong(client, token).content.decode()
        assert (WARNING in page) == (attempt == MAX_FAILED_ATTEMPTS - 1), attempt
    assert WARNING in client.get(reverse("portal:register", args=[token])).content.decode()  # opened again
    wrong(client, token)
    assert Invitation.objects.get(pk=invitation.pk).status == "revoked"  # the fifth voids it, as warned


def test_the_warning_speaks_the_patients_language(client, nunez_invited):
    invitation, token = nunez_invited
    Invitation.objects.filter(pk=invitation.pk).update(failed_attempts=MAX_FAILED_ATTEMPTS - 1, language="es")
    page = client.get(reverse("portal:register", args=[token])).content.decode()  # the link opens in Spanish
    assert "después de una respuesta incorrecta más, este enlace dejará de funcionar" in page
    assert WARNING not in page
