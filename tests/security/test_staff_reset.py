"""Staff password reset: the page does the same work for a known and an unknown address (count the
limits, hand the address to the task queue after commit) and a worker sends the email."""

import statistics
import time

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core import throttle
from patients.staff_auth import reset
from tests.factories import PatientFactory, UserFactory
from tests.workers import celery_worker, mail_dir, start_worker  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def ask_for_reset(client, email: str, address: str = "10.0.0.1"):
    return client.post("/admin/password_reset/", {"email": email}, REMOTE_ADDR=address)


def test_a_known_and_an_unknown_address_get_the_same_work_and_answer(client, front_desk_a, django_capture_on_commit_callbacks):
    shapes = []
    for email in (front_desk_a.email, "nobody@example.com"):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as enqueued:
            response = ask_for_reset(client, email, address=f"10.0.0.{len(shapes) + 1}")
        shapes.append((response.status_code, response["Location"], len(queries), len(enqueued)))
    assert shapes[0] == shapes[1] == (302, "/admin/password_reset/done/", shapes[0][2], 1)
    assert mail.outbox == []  # nothing is sent inside the request


def test_the_worker_emails_staff_accounts_only(client, practice_a, front_desk_a, eager_celery, django_capture_on_commit_callbacks):
    patient_user = UserFactory(username="patient.one", email="family@example.com", is_staff=False)
    PatientFactory(practice=practice_a, email="family@example.com", portal_user=patient_user)
    with django_capture_on_commit_callbacks(execute=True):
        assert ask_for_reset(client, "family@example.com").status_code == 302
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        ask_for_reset(client, front_desk_a.email.upper())
    assert [m.to for m in mail.outbox] == [[front_desk_a.email]]
    assert "https://portal.example.test/admin/reset/" in mail.outbox[0].body


def test_resets_are_limited_per_address_and_per_typed_email_without_saying_so(client, front_desk_a, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            assert ask_for_reset(client, front_desk_a.email, address=f"10.0.0.{n}").status_code == 302
    assert len(mail.outbox) == 3  # three a typed address per hour, from wherever
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        for n in range(6):
            assert ask_for_reset(client, f"other{n}@example.com", address="10.9.9.9").status_code == 302
    assert len(enqueued) == 5  # five from one address per hour
    assert throttle.count("staff-reset-email", "nobody@example.com", window_seconds=3600) == 0


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_known_address_is_answered_as_fast_as_an_unknown_one(front_desk_a, use_provider, monkeypatch):
    """The probe measured 212 ms against 7 ms with a network email provider. Here the provider
    (the stand-in, through anymail's real backend) takes 200 ms a call, the broker is Redis and
    tasks really are published after commit; the medians of 15 requests each must be within 40 ms."""
    from tests.workers import purge_broker

    use_provider("postmark").configure(latency=0.2)
    monkeypatch.setattr(reset, "ADDRESS_LIMIT", ("staff-reset", 1000, 3600))
    monkeypatch.setattr(reset, "EMAIL_LIMIT", ("staff-reset-email", 1000, 3600))
    client = Client()
    timings = {"known": [], "unknown": []}
    try:
        for n in range(16):
            for kind, email in (("known", front_desk_a.email), ("unknown", f"nobody{n}@example.com")):
                started = time.perf_counter()
                assert ask_for_reset(client, email).status_code == 302
                if n:  # the first round warms up connections
                    timings[kind].append(time.perf_counter() - started)
    finally:
        purge_broker()
    known, unknown = statistics.median(timings["known"]), statistics.median(timings["unknown"])
    assert abs(known - unknown) < 0.04, timings
    assert known < 0.15, timings  # the provider's 200 ms is not in it


@pytest.mark.worker
def test_a_real_worker_sends_the_email(front_desk_a, celery_worker, mail_dir):
    from tests.workers import read_mail

    assert ask_for_reset(Client(), front_desk_a.email).status_code == 302
    message = read_mail(mail_dir, to=front_desk_a.email)
    assert "/admin/reset/" in message
