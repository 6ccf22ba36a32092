"""A worker is killed with SIGKILL in the middle of an Activate Now run; a new worker and the
resume sweep finish it: every targeted patient has exactly one invitation and one email."""

import datetime

import pytest
from django.utils import timezone

from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRunStatus
from invitations.models import Invitation, Status
from patients.models import Patient
from tests.factories import PatientFactory, PracticeFactory
from tests.workers import sent_to, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PATIENTS = 300
CHUNK = 50
HANG_AFTER = 120  # emails the first worker gets out before it hangs and is killed


def test_sigkill_mid_run_then_a_new_worker_finishes_with_no_duplicates(start_worker, mail_dir, tmp_path):
    practice = PracticeFactory(name="Kill Test Dental")
    for i in range(PATIENTS):
        PatientFactory(practice=practice, email=f"k{i}@example.com")
    short_leases = {"PORTAL_SEND_CLAIM_LEASE_SECONDS": "3", "PORTAL_BULK_CHUNK_LEASE_SECONDS": "3"}
    doomed = start_worker(
        concurrency=2,
        TEST_EMAIL_BACKEND="tests.faults.backends.HangingFileBackend",
        FAULT_COUNTER_FILE=str(tmp_path / "counter"),
        FAULT_HANG_AFTER=str(HANG_AFTER),
        # Record every email as sent at once, one email at a time, so the kill point is exact
        # (production: every 100 emails or 2 seconds, 16 calls in flight).
        PORTAL_BULK_MARK_SENT_EVERY="1",
        PORTAL_SEND_CONCURRENCY="1",
        **short_leases,
    )
    run = runs.start_run(practice=practice, now=timezone.now(), chunk_size=CHUNK)

    wait_until(lambda: sum(sent_to(mail_dir).values()) >= HANG_AFTER, timeout=90, message="the first emails")
    wait_until(lambda: (tmp_path / "counter").read_text().count("x") >= HANG_AFTER + 1, timeout=30, message="the hang")
    doomed.kill()
    assert sum(sent_to(mail_dir).values()) == HANG_AFTER
    run.refresh_from_db()
    assert run.status == BulkRunStatus.RUNNING

    start_worker(concurrency=2, **short_leases)
    # Beat's resume sweep, run once the dead worker's leases have lapsed.
    wait_until(
        lambda: runs.resume_stalled(now=timezone.now() + datetime.timedelta(minutes=20)) >= 0
        and (run.refresh_from_db() or run.status == BulkRunStatus.DONE),
        timeout=120, interval=2, message="the run to finish",
    )
    counts = sent_to(mail_dir)
    emails = {p.email for p in Patient.objects.filter(practice=practice)}
    assert set(counts) == emails
    assert set(counts.values()) == {1}, {e: n for e, n in counts.items() if n != 1}
    per_patient = Invitation.objects.filter(practice=practice).values_list("patient_id", flat=True)
    assert len(per_patient) == len(set(per_patient)) == PATIENTS
    assert set(Invitation.objects.filter(practice=practice).values_list("status", flat=True)) == {Status.SENT}
