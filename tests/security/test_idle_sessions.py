"""Sessions end when idle (patients/staff_auth/sessions.py): staff after their practice's time
(default 30 minutes), patients after 15 minutes, everyone 12 hours after signing in."""

import datetime

import pytest
from django.test import Client
from django.urls import reverse

from patients.models import Role
from tests.factories import PatientFactory, PracticeFactory, UserFactory, staff_member

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen"), pytest.mark.sessions_idle_out]
PASSWORD = "pw-for-tests-only"


def minutes(n: float) -> datetime.timedelta:
    return datetime.timedelta(minutes=n)


def admin_page(client):
    return client.get("/admin/patients/patient/")


def test_staff_are_signed_out_after_thirty_idle_minutes(client_a, frozen):
    frozen.shift(minutes(29))
    assert admin_page(client_a).status_code == 200  # activity: the clock starts again
    frozen.shift(minutes(29))
    assert admin_page(client_a).status_code == 200
    frozen.shift(minutes(30) + datetime.timedelta(seconds=1))
    response = admin_page(client_a)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    login_page = client_a.get(response["Location"])
    assert "You were signed out after 30 minutes without activity" in login_page.content.decode()


def test_the_practice_sets_the_idle_time_and_the_shortest_wins(practice_a, frozen):
    practice_a.staff_idle_minutes = 10
    practice_a.save()
    member = staff_member(practice_a, Role.FRONT_DESK, username="desk")
    client = Client()
    client.force_login(member)
    frozen.shift(minutes(9))
    assert admin_page(client).status_code == 200
    frozen.shift(minutes(10) + datetime.timedelta(seconds=1))
    assert admin_page(client).status_code == 302

    relaxed = PracticeFactory(staff_idle_minutes=60)
    strict = PracticeFactory(staff_idle_minutes=15)
    both = staff_member(relaxed, Role.FRONT_DESK, username="both")
    from patients.models import Membership

    Membership.objects.create(user=both, practice=strict, role=Role.VIEWER)
    client = Client()
    client.force_login(both)
    frozen.shift(minutes(16))
    assert admin_page(client).status_code == 302


def test_a_changed_practice_setting_applies_within_a_minute(practice_a, client_a, frozen):
    practice_a.staff_idle_minutes = 5
    practice_a.save()
    frozen.shift(minutes(2))
    assert admin_page(client_a).status_code == 200  # reads the practice's time again
    frozen.shift(minutes(6))
    assert admin_page(client_a).status_code == 302


def test_patients_are_signed_out_after_fifteen_idle_minutes(practice_a, frozen):
    user = UserFactory(username="patient.one", is_staff=False)
    PatientFactory(practice=practice_a, portal_user=user)
    client = Client()
    client.force_login(user)
    home = reverse("portal:home")
    assert client.get(home).status_code == 200
    frozen.shift(minutes(14))
    assert client.get(home).status_code == 200
    frozen.shift(minutes(15) + datetime.timedelta(seconds=1))
    response = client.get(home)
    assert response.status_code == 302 and "login" in response["Location"]
    assert "_auth_user_id" not in client.session


def test_a_polling_page_does_not_keep_the_session_alive(client_a, frozen):
    frozen.shift(minutes(20))
    client_a.get("/admin/", headers={"Accept": "application/json"})
    frozen.shift(minutes(11))
    assert admin_page(client_a).status_code == 302


def test_everyone_is_signed_out_twelve_hours_after_signing_in(client_a, frozen):
    for _ in range(12 * 3 + 1):  # busy all day, a page every 20 minutes
        frozen.shift(minutes(20))
        response = admin_page(client_a)
        if response.status_code != 200:
            break
    assert response.status_code == 302
    assert "12 hours after signing in" in client_a.get(response["Location"]).content.decode()


def test_the_session_cookie_ends_with_the_idle_time(front_desk_a):
    client = Client()
    response = client.post("/admin/login/", {"username": front_desk_a.username, "password": PASSWORD})
    assert response.status_code == 302
    assert int(response.cookies["sessionid"]["max-age"]) == (30 + 10) * 60  # ten minutes' grace to say why


def test_the_staff_sign_in_offers_no_remember_me(client):
    assert "remember" not in client.get("/admin/login/").content.decode().lower()
