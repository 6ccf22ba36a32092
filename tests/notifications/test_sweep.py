"""The 15-minute sweep: 14-day incomplete and 48-hour open-approval alerts from stored times,
lost tasks re-sent, interrupted sends surfaced. Both sides of each boundary, frozen time."""

import datetime

import pytest
import time_machine
from django.core import mail

from notifications import services, tasks
from notifications.models import (
    INTERRUPTED_AFTER,
    LOST_TASK_AFTER,
    AlertType,
    ApplicationStatus,
    DeliveryMode,
    DeliveryStatus,
    NotificationDelivery,
)
from tests.clock import NOW

from .factories import ApplicationFactory

SECOND = datetime.timedelta(seconds=1)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("team")]


def run_sweep_at(moment):
    # The beat task, as beat runs it (outside any transaction, so sends follow each commit).
    with time_machine.travel(moment, tick=False):
        return tasks.sweep()


def started_app(office, started_at=NOW, **fields):
    return ApplicationFactory(practice=office, status=ApplicationStatus.STARTED, started_at=started_at, **fields)


def approved_app(office, approved_at=NOW, **fields):
    return ApplicationFactory(
        practice=office,
        status=ApplicationStatus.APPROVED,
        started_at=approved_at - datetime.timedelta(days=1),
        approved_at=approved_at,
        **fields,
    )


def test_no_incomplete_alert_a_second_before_14_days(office):
    started_app(office)
    report = run_sweep_at(NOW + datetime.timedelta(days=14) - SECOND)
    assert report["incomplete"] == 0
    assert not NotificationDelivery.objects.exists()
    assert mail.outbox == []


def test_incomplete_alert_a_second_after_14_days_sent_once(office, team):
    application = started_app(office)
    report = run_sweep_at(NOW + datetime.timedelta(days=14) + SECOND)
    assert report["incomplete"] == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in team)
    assert all(m.subject.startswith("Incomplete application:") for m in mail.outbox)

    application.refresh_from_db()
    assert application.incomplete_due_at is None
    assert application.incomplete_alerted_at == NOW + datetime.timedelta(days=14) + SECOND

    # Later sweeps find nothing more to send.
    run_sweep_at(NOW + datetime.timedelta(days=14, minutes=15))
    run_sweep_at(NOW + datetime.timedelta(days=30))
    assert len(mail.outbox) == len(team)
    assert NotificationDelivery.objects.filter(alert_type=AlertType.INCOMPLETE, status=DeliveryStatus.SENT).count() == len(team)


def test_no_incomplete_alert_once_the_application_moved_on(office):
    application = started_app(office)
    with time_machine.travel(NOW + datetime.timedelta(days=13), tick=False):
        services.record_status_change(
            application=application,
            status="pre_qualified",
            occurred_at=NOW + datetime.timedelta(days=13),
            actor=None,
        )
    mail.outbox.clear()
    run_sweep_at(NOW + datetime.timedelta(days=15))
    assert not NotificationDelivery.objects.filter(alert_type=AlertType.INCOMPLETE).exists()
    assert mail.outbox == []


def test_no_open_approval_alert_a_second_before_48_hours(office):
    approved_app(office)
    run_sweep_at(NOW + datetime.timedelta(hours=48) - SECOND)
    assert not NotificationDelivery.objects.exists()


def test_open_approval_alert_a_second_after_48_hours_sent_once(office, team):
    approved_app(office)
    run_sweep_at(NOW + datetime.timedelta(hours=48) + SECOND)
    run_sweep_at(NOW + datetime.timedelta(hours=48, minutes=15))
    assert len(mail.outbox) == len(team)
    assert all(m.subject.startswith("Open approval:") for m in mail.outbox)
    assert set(NotificationDelivery.objects.values_list("alert_type", "status")) == {
        (AlertType.OPEN_APPROVAL, DeliveryStatus.SENT)
    }


def test_no_open_approval_alert_once_activated(office):
    application = approved_app(office)
    with time_machine.travel(NOW + datetime.timedelta(hours=47), tick=False):
        services.record_status_change(
            application=application, status="activated", occurred_at=NOW + datetime.timedelta(hours=47), actor=None
        )
    mail.outbox.clear()
    run_sweep_at(NOW + datetime.timedelta(hours=49))
    assert not NotificationDelivery.objects.filter(alert_type=AlertType.OPEN_APPROVAL).exists()
    assert mail.outbox == []


def test_due_times_come_from_the_lenders_step_times(office):
    """An application whose start the lender reports late is due 14 days after the start,
    not after we heard of it."""
    application = started_app(office, started_at=NOW - datetime.timedelta(days=20))
    assert application.incomplete_due_at == NOW - datetime.timedelta(days=6)
    run_sweep_at(NOW)
    assert NotificationDelivery.objects.filter(application=application, alert_type=AlertType.INCOMPLETE).exists()


def test_the_sweep_resends_alerts_whose_task_was_lost(office, alice, bob):
    application = started_app(office)
    # A pending immediate alert whose task never reached a worker (broker was down).
    NotificationDelivery.objects.create(
        practice=office, application=application, alert_type=AlertType.DECLINED, recipient=alice, created_at=NOW
    )
    run_sweep_at(NOW + LOST_TASK_AFTER - SECOND)
    assert mail.outbox == []
    report = run_sweep_at(NOW + LOST_TASK_AFTER + SECOND)
    assert report["requeued"] == 1
    assert [m.to for m in mail.outbox] == [[alice.email]]
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENT


def test_digest_items_are_left_for_the_digest(office, alice):
    application = started_app(office)
    NotificationDelivery.objects.create(
        practice=office,
        application=application,
        alert_type=AlertType.DECLINED,
        recipient=alice,
        created_at=NOW,
        delivery_mode=DeliveryMode.DIGEST,
    )
    assert run_sweep_at(NOW + datetime.timedelta(hours=1))["requeued"] == 0
    assert NotificationDelivery.objects.get().status == DeliveryStatus.PENDING


def test_an_interrupted_send_becomes_failed_not_resent(office, alice):
    application = started_app(office)
    NotificationDelivery.objects.create(
        practice=office,
        application=application,
        alert_type=AlertType.DECLINED,
        recipient=alice,
        status=DeliveryStatus.SENDING,
        attempts=1,
        claimed_at=NOW,
    )
    run_sweep_at(NOW + INTERRUPTED_AFTER - SECOND)
    assert NotificationDelivery.objects.get().status == DeliveryStatus.SENDING
    report = run_sweep_at(NOW + INTERRUPTED_AFTER + SECOND)
    delivery = NotificationDelivery.objects.get()
    assert report["interrupted"] == 1
    assert delivery.status == DeliveryStatus.FAILED
    assert "Interrupted while sending" in delivery.last_error
    assert mail.outbox == []


def test_the_sweep_reads_only_due_rows(office, django_assert_max_num_queries):
    for _ in range(20):
        started_app(office)  # not due for 14 days
    with django_assert_max_num_queries(8):
        services.sweep(now=NOW + datetime.timedelta(days=1))


def test_the_sweep_shows_on_the_system_status_page():
    from patients.jobs import JobRun

    run_sweep_at(NOW)
    job = JobRun.objects.get(name="notifications.sweep")
    assert (job.last_result, job.last_started_at) == ("ok", NOW)
    assert job.expected_every() == datetime.timedelta(minutes=15)


def test_beat_runs_the_sweep_every_15_minutes_without_eta():
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["notifications-sweep"]
    assert entry["task"] == tasks.sweep.name
    assert entry["schedule"].minute == {0, 15, 30, 45}
    assert "options" not in entry
    digest = settings.CELERY_BEAT_SCHEDULE["notifications-daily-digests"]
    assert digest["task"] == tasks.send_due_digests.name
