"""Two sweeps, two workers or two identical webhook deliveries at the same moment send one
alert. Real row locks need PostgreSQL: run with
DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python -m pytest tests/notifications
"""

import datetime
import threading

import pytest
import time_machine
from django.core import mail

from notifications import services
from notifications.models import (
    AlertType,
    ApplicationStatus,
    DeliveryStatus,
    LenderEvent,
    NotificationDelivery,
    PaymentPlanApplication,
)
from tests.clock import NOW
from tests.threads import run_together

from .factories import ApplicationFactory

THREADS = 4

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_sweeps_send_one_alert_per_member(office, team):
    applications = [
        ApplicationFactory(practice=office, started_at=NOW - datetime.timedelta(days=15)) for _ in range(5)
    ]
    with time_machine.travel(NOW, tick=False):
        reports = run_together(lambda: services.sweep(now=NOW), THREADS)

    assert sum(r.incomplete for r in reports) == len(applications)
    deliveries = NotificationDelivery.objects.filter(alert_type=AlertType.INCOMPLETE)
    assert deliveries.count() == len(applications) * len(team)
    assert set(deliveries.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert len(mail.outbox) == len(applications) * len(team)
    sent_pairs = sorted((m.to[0], m.body.split("/paymentplanapplication/")[1].split("/")[0]) for m in mail.outbox)
    assert len(set(sent_pairs)) == len(sent_pairs)


def test_concurrent_workers_send_one_email(office, alice):
    application = ApplicationFactory(practice=office)
    delivery = NotificationDelivery.objects.create(
        practice=office, application=application, alert_type=AlertType.DECLINED, recipient=alice
    )
    with time_machine.travel(NOW, tick=False):
        outcomes = run_together(lambda: services.deliver_alert(delivery.pk), THREADS)
    assert sorted(outcomes) == ["sent"] + ["skipped"] * (THREADS - 1)
    assert len(mail.outbox) == 1


def test_the_same_event_delivered_concurrently_is_applied_once(office, team, plan_patient):
    def apply():
        return services.apply_event(
            practice_id=office.pk,
            event_id="evt-dup",
            lender_application_id="LND-9",
            patient_id=plan_patient.pk,
            event_type="activated",
            occurred_at=NOW,
            now=NOW,
        ).outcome

    with time_machine.travel(NOW, tick=False):
        outcomes = run_together(apply, THREADS)
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * (THREADS - 1)
    assert LenderEvent.objects.count() == 1
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.ACTIVATED
    assert len(mail.outbox) == len(team)


def test_different_events_for_a_new_application_create_it_once(office, team, plan_patient):
    types = ["started", "pre_qualified", "approved", "activated"]

    def apply(event_type):
        return lambda: services.apply_event(
            practice_id=office.pk,
            event_id=f"evt-{event_type}",
            lender_application_id="LND-10",
            patient_id=plan_patient.pk,
            event_type=event_type,
            occurred_at=NOW,
            now=NOW,
        ).outcome

    barrier_targets = iter(types)
    lock = threading.Lock()

    def next_event():
        with lock:
            event_type = next(barrier_targets)
        return apply(event_type)()

    with time_machine.travel(NOW, tick=False):
        run_together(next_event, count=len(types))
    application = PaymentPlanApplication.objects.get()
    assert application.status == ApplicationStatus.ACTIVATED
    assert LenderEvent.objects.count() == len(types)
