import datetime

import pytest
import time_machine
from django.core import mail
from django.test import Client

from patients.models import Role
from tests.factories import PatientFactory, UserFactory, staff_member

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-only"


def test_staff_sign_in_is_rate_limited_per_address_counting_failures(client, front_desk_a):
    for n in range(10):
        response = client.post("/admin/login/", {"username": f"guess{n}", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins from this address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    other = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302


def test_successful_sign_ins_never_count(practice_a):
    """An office behind one router: fifteen people sign in at opening time."""
    staff = [staff_member(practice_a, Role.FRONT_DESK, username=f"desk{n}") for n in range(15)]
    for member in staff:
        response = Client().post("/admin/login/", {"username": member.username, "password": PASSWORD})
        assert response.status_code == 302, member.username


def test_one_account_is_locked_after_repeated_failures_from_any_address(front_desk_a, practice_a):
    started = datetime.datetime(2026, 3, 2, 15, 0, tzinfo=datetime.timezone.utc)
    with time_machine.travel(started, tick=False) as clock:
        for n in range(10):  # a guesser spreading over three addresses
            response = Client().post("/admin/login/", {"username": "FrontDesk_A", "password": f"guess{n}"}, REMOTE_ADDR=f"10.0.{n % 3}.1")
            assert response.status_code == 200
        refused = Client().post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD}, REMOTE_ADDR="10.9.9.9")
        assert refused.status_code == 429
        assert "This account is locked for 15 minutes" in refused.content.decode()
        colleague = staff_member(practice_a, Role.FRONT_DESK, username="colleague")
        assert Client().post("/admin/login/", {"username": colleague.username, "password": PASSWORD}, REMOTE_ADDR="10.9.9.9").status_code == 302
        clock.shift(datetime.timedelta(minutes=15))
        assert Client().post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD}, REMOTE_ADDR="10.9.9.9").status_code == 302


def test_staff_sign_in_still_works(client, front_desk_a):
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD})
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


@pytest.mark.django_db(transaction=True)
def test_the_address_limit_holds_across_gunicorn_workers(tmp_path, front_desk_a):
    """With the limit in one process's memory, 17 of 25 attempts went through a limit of 10 on two
    workers; the counters are shared now."""
    import re

    import requests

    from tests.workers import gunicorn

    with gunicorn(tmp_path, workers=2) as (base, _log):
        statuses = []
        for n in range(25):
            session = requests.Session()  # a new connection: the workers take turns
            page = session.get(base + "/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            response = session.post(
                base + "/admin/login/", data={"username": f"guess{n}", "password": "wrong", "csrfmiddlewaretoken": token},
                headers={"Referer": base + "/admin/login/"}, allow_redirects=False,
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429] * 15
