"""Activate Now races on PostgreSQL with real connections: two confirms at once, a chunk task
delivered to two workers at once, a chunk racing a single invite of one of its patients."""

import pytest
from django.core import mail

from invitations import services
from invitations.bulk import chunks, runs
from invitations.models import Invitation
from invitations.models.bulk_runs import BulkRun
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def locmem(settings, monkeypatch):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    monkeypatch.setattr(chunks, "enqueue", lambda ids: None)  # the tests run the chunks themselves
    monkeypatch.setattr(runs, "_enqueue_planning", lambda ids: None)


def start_or_none(practice):
    try:
        return runs.start_run(practice=practice, now=NOW)
    except runs.RunAlreadyRunning:
        return None


def test_four_activate_now_confirms_at_once_start_one_run():
    practice = PracticeFactory()
    PatientFactory.create_batch(3, practice=practice)
    started = run_together(lambda: start_or_none(practice))
    assert sum(run is not None for run in started) == 1
    assert BulkRun.objects.filter(practice=practice).count() == 1


def test_a_chunk_delivered_to_four_workers_at_once_sends_each_email_once():
    practice = PracticeFactory()
    patients = PatientFactory.create_batch(20, practice=practice)
    run = runs.start_run(practice=practice, now=NOW)
    chunk_id = run.chunks.get().pk
    results = run_together(lambda: chunks.process_chunk(chunk_id, now=NOW))
    assert sorted(results) == ["done"] + ["not-claimed"] * 3
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in patients)
    assert Invitation.objects.count() == 20


def test_a_chunk_and_single_invites_of_its_patients_make_one_invitation_each():
    practice = PracticeFactory()
    patients = PatientFactory.create_batch(10, practice=practice)
    run = runs.start_run(practice=practice, now=NOW, chunk_size=10)
    chunk_id = run.chunks.get().pk

    def single(patient):
        return lambda: services.invite(patient, now=NOW).created

    results = run_together([lambda: chunks.process_chunk(chunk_id, now=NOW)] + [single(p) for p in patients[:3]])
    assert results.count("done") == 1
    for patient in patients:
        assert Invitation.objects.filter(patient=patient).count() == 1
    assert Invitation.objects.filter(is_latest=True).count() == 10
