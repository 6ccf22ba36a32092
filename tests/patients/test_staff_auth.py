import pytest
from django.core import mail
from django.core.cache import cache

from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean_limits():
    cache.clear()
    yield
    cache.clear()


def test_staff_sign_in_is_rate_limited_per_address(client, front_desk_a):
    for _ in range(10):
        response = client.post("/admin/login/", {"username": "frontdesk_a", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": "pw-for-tests-only"})
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    other = client.post("/admin/login/", {"username": "frontdesk_a", "password": "pw-for-tests-only"}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302


def test_staff_sign_in_still_works(client, front_desk_a):
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": "pw-for-tests-only"})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(front_desk_a.pk)


def test_staff_password_reset_ignores_patient_accounts(client, practice_a, front_desk_a):
    patient_user = UserFactory(username="patient.one", email="family@example.com", is_staff=False)
    PatientFactory(practice=practice_a, email="family@example.com", portal_user=patient_user)
    assert client.post("/admin/password_reset/", {"email": "family@example.com"}).status_code == 302
    assert mail.outbox == []
    client.post("/admin/password_reset/", {"email": front_desk_a.email})
    assert [m.to for m in mail.outbox] == [[front_desk_a.email]]


def test_staff_password_reset_is_rate_limited_without_saying_so(client, front_desk_a):
    for _ in range(7):
        assert client.post("/admin/password_reset/", {"email": front_desk_a.email}).status_code == 302
    assert len(mail.outbox) == 5
