"""End to end with a real Celery worker on the embedded broker: a lender event's alert and a
sweep's alert are sent by the worker after commit, once each, duplicates and repeated sweeps
notwithstanding."""

import pytest

from tests.workers import run_beside_an_embedded_worker

CLIENT = r"""
import datetime, time
import django
django.setup()
from tests.workers import wait_for_the_embedded_worker
from django.db import transaction
from django.utils import timezone
from notifications import services, tasks
from notifications.models import NotificationDelivery, PaymentPlanApplication
from patients.models import Membership, Patient, Practice, Role
from django.contrib.auth import get_user_model

practice = Practice.objects.create(name="Worker Dental")
user = get_user_model().objects.create(username="member", email="member@worker.example", is_staff=True)
Membership.objects.create(user=user, practice=practice, role=Role.FRONT_DESK)
patient = Patient.objects.create(practice=practice, chart_number="W1", first_name="Wanda", last_name="Wright")
now = timezone.now()
for _ in range(2):  # the lender retries the same event
    services.apply_event(practice_id=practice.pk, event_id="evt-1", lender_application_id="W-APP-1",
                         patient_id=patient.pk, event_type="declined", occurred_at=now, now=now)
services.apply_event(practice_id=practice.pk, event_id="evt-2", lender_application_id="W-APP-2",
                     patient_id=patient.pk, event_type="started", occurred_at=now - datetime.timedelta(days=15), now=now)
tasks.sweep.delay()
tasks.sweep.delay()
deadline = time.time() + 60
while time.time() < deadline:
    statuses = list(NotificationDelivery.objects.values_list("alert_type", "status"))
    if len(statuses) == 2 and all(s == "sent" for _, s in statuses) and not PaymentPlanApplication.objects.filter(incomplete_due_at__isnull=False).exists():
        break
    time.sleep(0.5)
wait_for_the_embedded_worker()  # a wrongly repeated send would show up by then
print(sorted(NotificationDelivery.objects.values_list("alert_type", "status")))
"""


@pytest.mark.worker
def test_a_real_worker_sends_each_alert_once(tmp_path):
    client = run_beside_an_embedded_worker(tmp_path, CLIENT, timeout=120)
    assert client.returncode == 0, client.stderr[-3000:]
    assert client.stdout.strip().splitlines()[-1] == "[('declined', 'sent'), ('incomplete', 'sent')]"

    messages = [p.read_text() for p in (tmp_path / "var" / "mail").iterdir()]
    subjects = sorted(line for text in messages for line in text.splitlines() if line.startswith("Subject:"))
    assert subjects == [
        "Subject: Declined: payment-plan alert from Worker Dental",
        "Subject: Incomplete application: payment-plan alert from Worker Dental",
    ]
    assert all("Wanda W." in text and "Wright" not in text for text in messages)
