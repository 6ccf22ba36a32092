"""The daily digest: one email per member per office with their pending alerts, at 7:00 office
time; caught up on the next run if beat missed the hour; each alert in one digest only."""

import datetime

import pytest
import time_machine
from django.core import mail

from notifications import digests, services, tasks
from notifications.models import (
    AlertType,
    DeliveryMode,
    DeliveryStatus,
    NotificationDelivery,
)
from patients.models import Membership, Role
from tests.clock import UTC
from tests.factories import PatientFactory

# Not tests.clock.NOW: the digests go at 7:00 office time, so these tests start earlier, on
# Monday 2 March 2026, 12:30 UTC = 7:30 in New York (Maple Dental), 4:30 in Los Angeles (Birch Smiles).
NOW = datetime.datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
YESTERDAY = NOW - datetime.timedelta(days=1)

pytestmark = pytest.mark.django_db


def run_digests_at(moment):
    with time_machine.travel(moment, tick=False):
        return tasks.send_due_digests()


@pytest.fixture
def bob_digest(office, other_office, bob):
    Membership.objects.create(user=bob, practice=other_office, role=Role.FRONT_DESK)
    for practice in (office, other_office):
        services.save_preferences(
            user=bob,
            practice=practice,
            enabled={t.value: True for t in AlertType},
            delivery_mode=DeliveryMode.DIGEST,
        )
    return bob


def alert(practice, patient, event_type, at, application_id):
    with time_machine.travel(at, tick=False):
        services.apply_event(
            practice_id=practice.pk,
            event_id=f"evt-{application_id}-{event_type}",
            lender_application_id=application_id,
            patient_id=patient.pk,
            event_type=event_type,
            occurred_at=at,
            now=at,
        )


def test_one_digest_per_member_per_office(office, other_office, alice, bob_digest, django_capture_on_commit_callbacks):
    rosa = PatientFactory(practice=office, first_name="Rosalind", last_name="Okonkwo")
    tom = PatientFactory(practice=office, first_name="Tomas", last_name="Varga")
    lee = PatientFactory(practice=other_office, first_name="Lee", last_name="Park")
    with django_capture_on_commit_callbacks(execute=True):
        alert(office, rosa, "declined", YESTERDAY, "A1")
        alert(office, tom, "activated", YESTERDAY + datetime.timedelta(hours=1), "A2")
        alert(other_office, lee, "pre_qualified", YESTERDAY + datetime.timedelta(hours=3), "B1")  # 7:30 in LA
    # Alice (immediate) got her two Maple alerts at once; Bob got nothing yet.
    assert [m.to for m in mail.outbox] == [[alice.email], [alice.email]]
    mail.outbox.clear()

    assert run_digests_at(NOW) == 1  # Maple's 7:00 has passed, Birch's has not
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert message.to == [bob_digest.email]
    assert message.subject == "Daily payment-plan digest for Maple Dental: 2 alerts"
    for part in (message.body, html):
        assert "Declined" in part and "Rosalind O." in part
        assert "Payment plan activated" in part and "Tomas V." in part
        assert "Lee P." not in part and "Okonkwo" not in part
        assert "https://portal.example.test/admin/notifications/paymentplanapplication/" in part
    assert set(
        NotificationDelivery.objects.filter(recipient=bob_digest, practice=office).values_list("status", flat=True)
    ) == {DeliveryStatus.SENT}

    # Running again sends nothing twice.
    assert run_digests_at(NOW + datetime.timedelta(minutes=5)) == 0
    assert len(mail.outbox) == 1

    # Birch Smiles' digest goes at 7:00 Los Angeles time (15:00 UTC).
    assert run_digests_at(NOW.replace(hour=14, minute=59)) == 0
    assert run_digests_at(NOW.replace(hour=15, minute=5)) == 1
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject == "Daily payment-plan digest for Birch Smiles: 1 alert"
    assert "Lee P." in mail.outbox[1].body


def test_alerts_after_the_digest_time_wait_for_the_next_one(office, bob_digest, plan_patient):
    alert(office, plan_patient, "declined", NOW - datetime.timedelta(minutes=20), "A1")  # 7:10 New York
    assert run_digests_at(NOW) == 0
    assert mail.outbox == []
    # A missed hour is caught up: the next morning's run, or any run after it.
    assert run_digests_at(NOW + datetime.timedelta(days=1, hours=3)) == 1
    assert "Rosalind O." in mail.outbox[0].body


def test_a_failed_digest_is_kept_and_retried(office, bob_digest, plan_patient):
    from unittest import mock

    from anymail.exceptions import AnymailAPIError

    alert(office, plan_patient, "declined", YESTERDAY, "A1")
    with time_machine.travel(NOW, tick=False), mock.patch(
        "django.core.mail.EmailMultiAlternatives.send", side_effect=AnymailAPIError("ESP down")
    ):
        with pytest.raises(services.RetryLater):
            digests.send_digest(user_id=bob_digest.pk, practice_id=office.pk)
    delivery = NotificationDelivery.objects.get(recipient=bob_digest)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)
    assert "ESP down" in delivery.last_error

    with time_machine.travel(NOW, tick=False):
        assert digests.send_digest(user_id=bob_digest.pk, practice_id=office.pk) == "sent"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert len(mail.outbox) == 1


def test_a_type_switched_off_before_the_digest_is_left_out(office, bob_digest, plan_patient):
    tom = PatientFactory(practice=office, first_name="Tomas", last_name="Varga")
    alert(office, plan_patient, "declined", YESTERDAY, "A1")
    alert(office, tom, "activated", YESTERDAY, "A2")
    services.save_preferences(
        user=bob_digest,
        practice=office,
        enabled={t.value: t != AlertType.DECLINED for t in AlertType},
        delivery_mode=DeliveryMode.DIGEST,
    )
    run_digests_at(NOW)
    assert len(mail.outbox) == 1
    assert "Tomas V." in mail.outbox[0].body and "Rosalind O." not in mail.outbox[0].body
    assert NotificationDelivery.objects.get(alert_type=AlertType.DECLINED, recipient=bob_digest).status == (
        DeliveryStatus.CANCELLED
    )


@pytest.mark.parametrize(
    "now,expected",
    [
        (datetime.datetime(2026, 3, 2, 11, 59, 59, tzinfo=UTC), datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        (datetime.datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC), datetime.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        # After the switch to daylight saving time 7:00 New York is 11:00 UTC.
        (datetime.datetime(2026, 3, 9, 11, 30, tzinfo=UTC), datetime.datetime(2026, 3, 9, 11, 0, tzinfo=UTC)),
    ],
)
def test_digest_cutoff_is_7_am_office_time(office, now, expected):
    assert digests.digest_cutoff(office, now) == expected
