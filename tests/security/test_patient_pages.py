"""The patient pages' security: portal sign-in limits counted before they decide (per address and,
new, per account), concurrency on PostgreSQL and Redis, and password reset and access requests that
do the same work for a known and an unknown person (the worker does the rest, after commit)."""

import datetime
import re
import statistics
import time

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from portal.pages import access_requests, account
from tests.conftest import count_limits_in
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.threads import run_together

pytestmark = pytest.mark.django_db
PASSWORD = "a long portal passphrase 9"


def registered_user(username: str, email: str = "family@example.com", practice=None):
    user = UserFactory(username=username, email=email, is_staff=False)
    user.set_password(PASSWORD)
    user.save()
    PatientFactory(practice=practice or PracticeFactory(), email=email, portal_user=user)
    return user


def portal_sign_in(username: str, password: str, address: str = "10.0.0.1", client: Client | None = None):
    return (client or Client()).post(reverse("portal:login"), {"username": username, "password": password}, REMOTE_ADDR=address)


# -- sign-in ------------------------------------------------------------------------------------


def test_five_failures_lock_the_account_from_that_address(practice_a):
    registered_user("paula.p", practice=practice_a)
    for n in range(5):
        assert portal_sign_in("paula.p", f"guess{n}").status_code == 200
    assert portal_sign_in("paula.p", PASSWORD).status_code == 429
    assert portal_sign_in("paula.p", PASSWORD, address="10.0.0.2").status_code == 302


def test_guessing_one_account_from_many_addresses_is_slowed_down(practice_a):
    """The probe: 25 addresses x 1 guess were all evaluated, then the right password worked."""
    registered_user("paula.p", practice=practice_a)
    statuses = [portal_sign_in("Paula.P", f"guess{n}", address=f"10.1.{n}.1").status_code for n in range(25)]
    assert statuses.count(200) == 11  # ten, then one turn of the slow-down
    assert portal_sign_in("paula.p", PASSWORD, address="10.2.0.1").status_code == 429


def test_the_patients_own_browser_is_not_slowed_down_and_a_reset_unlocks(practice_a):
    user = registered_user("paula.p", practice=practice_a)
    own = Client()
    assert portal_sign_in("paula.p", PASSWORD, client=own).status_code == 302
    remembered = own.cookies["portal_patient_browser"].value
    own.logout()
    own.cookies["portal_patient_browser"] = remembered
    for n in range(12):
        portal_sign_in("paula.p", f"guess{n}", address=f"10.1.{n}.1")
    assert portal_sign_in("paula.p", PASSWORD, address="10.3.0.1", client=own).status_code == 302
    for n in range(5):
        portal_sign_in("paula.p", f"guess{n}", address="10.4.0.1")
    assert portal_sign_in("paula.p", PASSWORD, address="10.4.0.1").status_code == 429
    user.refresh_from_db()  # the token depends on the last sign-in
    uid, token = urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)
    browser = Client()
    page = browser.get(reverse("portal:password_reset_confirm", args=[uid, token]), follow=True)
    new = "another long passphrase 10"
    assert browser.post(page.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}).status_code == 302
    assert portal_sign_in("paula.p", new, address="10.4.0.1").status_code == 302


STORES = [
    pytest.param("database", marks=[pytest.mark.postgres], id="postgres"),
    pytest.param("redis", marks=[pytest.mark.redis], id="redis"),
]


@pytest.fixture(params=STORES)
def portal_limit_store(request, monkeypatch):
    return count_limits_in(request.param, monkeypatch)


def portal_burst(requests: list[tuple[str, str, str]]) -> list[int]:
    """POST each (username, password, address) to the portal's sign-in from its own thread, all at once."""
    return run_together([lambda request=request: portal_sign_in(*request, client=Client()).status_code for request in requests])


@pytest.mark.django_db(transaction=True)
def test_forty_guesses_at_once_from_one_address_are_five_evaluated(portal_limit_store):
    registered_user("paula.p")
    statuses = portal_burst([("paula.p", f"guess{n}", "10.0.0.1") for n in range(40)])
    assert statuses.count(200) == 5 and statuses.count(429) == 35


@pytest.mark.django_db(transaction=True)
def test_forty_accounts_at_once_from_one_address_are_twenty_evaluated(portal_limit_store):
    """The probe got 33 through the address's limit of 20."""
    statuses = portal_burst([(f"nobody{n}", "guess", "10.0.0.1") for n in range(40)])
    assert statuses.count(200) == 20 and statuses.count(429) == 20


# -- password reset and access requests: the same work for everyone -----------------------------


def test_a_reset_for_a_known_and_an_unknown_address_is_the_same_work(practice_a, django_capture_on_commit_callbacks):
    registered_user("paula.p", email="paula@example.com", practice=practice_a)
    shapes = []
    for n, email in enumerate(("paula@example.com", "nobody@example.com")):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as enqueued:
            response = Client().post(reverse("portal:password_reset"), {"email": email}, REMOTE_ADDR=f"10.0.0.{n}")
        shapes.append((response.status_code, response["Location"], len(queries), len(enqueued)))
    assert shapes[0] == shapes[1] and shapes[0][3] == 1
    assert mail.outbox == []


def access_form(**overrides):
    data = {
        "first_name": "Renee", "last_name": "Dubois", "date_of_birth": "08/08/1988",
        "email": "renee@example.com", "zip_code": "02139", "birth_sex": "F",
    }
    return {**data, **overrides}


def test_an_access_request_for_a_patient_and_a_stranger_is_the_same_work(django_capture_on_commit_callbacks, eager_celery):
    from patients.models import Patient

    practice = PracticeFactory(self_signup_enabled=True)
    PatientFactory(practice=practice, last_name="Dubois", date_of_birth=datetime.date(1988, 8, 8), email="renee@example.com")
    url = reverse("portal:request_access", args=[practice.pk])
    shapes = []
    for n, data in enumerate((access_form(), access_form(last_name="Stranger", email="someone@example.com"))):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as enqueued:
            response = Client().post(url, data, REMOTE_ADDR=f"10.0.0.{n}")
        page = re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", response.content)
        shapes.append((response.status_code, page, len(queries), len(enqueued)))
    assert shapes[0] == shapes[1] and shapes[0][3] == 1
    assert Patient.objects.count() == 1 and mail.outbox == []  # nothing found, made or sent in the request
    with django_capture_on_commit_callbacks(execute=True):  # the worker's part
        Client().post(url, access_form(last_name="Stranger", email="someone@example.com"), REMOTE_ADDR="10.0.1.1")
    assert Patient.objects.count() == 2 and [m.to for m in mail.outbox] == [["someone@example.com"]]


def median_times(send, kinds: dict, rounds: int = 15) -> dict:
    timings = {kind: [] for kind in kinds}
    for n in range(rounds + 1):
        for kind, make in kinds.items():
            started = time.perf_counter()
            send(make(n))
            if n:  # the first round warms up
                timings[kind].append(time.perf_counter() - started)
    return {kind: statistics.median(values) for kind, values in timings.items()}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_known_and_unknown_people_are_answered_alike(use_provider, monkeypatch):
    """With the email provider taking 200 ms a call (the stand-in, through anymail), a Redis broker
    and tasks really published after commit: the medians of 15 requests each are within 40 ms,
    for password resets and for access requests."""
    from tests.workers import purge_broker

    use_provider("postmark").configure(latency=0.2)
    monkeypatch.setattr(account, "RESET_ADDRESS_LIMIT", ("portal-reset", 1000, 3600))
    monkeypatch.setattr(account, "RESET_EMAIL_LIMIT", ("portal-reset-email", 1000, 3600))
    monkeypatch.setattr(access_requests, "ACCESS_REQUEST_LIMIT", (1000, 3600))
    registered_user("paula.p", email="paula@example.com")
    practice = PracticeFactory(self_signup_enabled=True)
    PatientFactory(practice=practice, last_name="Dubois", date_of_birth=datetime.date(1988, 8, 8), email="renee@example.com")
    client = Client()
    try:
        resets = median_times(
            lambda email: client.post(reverse("portal:password_reset"), {"email": email}),
            {"known": lambda n: "paula@example.com", "unknown": lambda n: f"nobody{n}@example.com"},
        )
        requests = median_times(
            lambda data: client.post(reverse("portal:request_access", args=[practice.pk]), data),
            {"patient": lambda n: access_form(email=f"renee{n}@example.com" if n > 2 else "renee@example.com"),
             "stranger": lambda n: access_form(last_name=f"Stranger{n}", email=f"s{n}@example.com")},
        )
    finally:
        purge_broker()
    assert abs(resets["known"] - resets["unknown"]) < 0.04, resets
    assert abs(requests["patient"] - requests["stranger"]) < 0.04, requests
    assert max(resets.values()) < 0.15, resets
