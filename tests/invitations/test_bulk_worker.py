"""Activate Now end to end with a real Celery worker process (embedded filesystem broker): the
confirmed run is planned and its chunks sent by the worker after commit, each patient emailed once,
even when every chunk task is delivered twice."""

import pytest

from tests.workers import run_beside_an_embedded_worker

CLIENT = r"""
import time
import django
django.setup()
from tests.workers import wait_for_the_embedded_worker
from django.utils import timezone
from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRun
from invitations.tasks import process_bulk_chunk
from patients.models import Patient, Practice

practice = Practice.objects.create(name="Worker Dental")
for i in range(7):
    Patient.objects.create(practice=practice, chart_number=f"W{i}", first_name="Wanda", last_name=f"W{i}",
        date_of_birth="1980-01-01", zip_code="02139", email=f"w{i}@worker.example", birth_sex="F", email_consent=True)
Patient.objects.create(practice=practice, chart_number="W9", first_name="Nope", last_name="N", date_of_birth="1980-01-01",
    zip_code="02139", email="n@worker.example", birth_sex="F", email_consent=False)
run = runs.start_run(practice=practice, now=timezone.now(), plan_later=True)
deadline = time.time() + 90
duplicated = False
while time.time() < deadline:
    run.refresh_from_db()
    if run.planned_at and not duplicated:
        for chunk_id in run.chunks.values_list("pk", flat=True):
            process_bulk_chunk.delay(chunk_id)  # a second delivery of every chunk task
        duplicated = True
    if not run.is_running:
        break
    time.sleep(0.3)
wait_for_the_embedded_worker()  # a wrongly repeated send would show up by then
run.refresh_from_db()
print(run.status, run.targeted, run.sent, run.chunks.count(), run.skip_counts)
"""


@pytest.mark.worker
def test_a_real_worker_runs_activate_now_and_emails_each_patient_once(tmp_path):
    client = run_beside_an_embedded_worker(tmp_path, CLIENT, timeout=150)
    assert client.returncode == 0, client.stderr[-3000:]
    assert client.stdout.strip().splitlines()[-1] == "done 7 7 1 {'no_consent': 1}"
    messages = [p.read_text() for p in (tmp_path / "var" / "mail").iterdir()]
    recipients = sorted(line for text in messages for line in text.splitlines() if line.startswith("To: "))
    assert recipients == [f"To: w{i}@worker.example" for i in range(7)]
