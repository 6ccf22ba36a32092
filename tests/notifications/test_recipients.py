"""Who gets an alert: team members of the office with that type on (no row = on)."""

import pytest
from django.core import mail

from notifications import services
from notifications.models import (
    AlertType,
    DeliveryMode,
    DeliveryStatus,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
)
from patients.models import Membership, Role
from tests.clock import NOW
from tests.factories import UserFactory, staff_member

from .factories import ApplicationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def switch_off(user, practice, alert_type):
    NotificationPreference.objects.create(user=user, practice=practice, alert_type=alert_type, enabled=False)


def recipient_ids(practice, alert_type):
    return [user_id for user_id, _ in services.recipients(practice_id=practice.pk, alert_type=alert_type)]


def test_new_members_get_every_type(office, team):
    for alert_type in AlertType:
        assert recipient_ids(office, alert_type) == sorted(u.pk for u in team)


def test_it_filters_by_type_and_office(office, other_office, alice, bob):
    Membership.objects.create(user=alice, practice=other_office, role=Role.VIEWER)
    switch_off(alice, office, AlertType.DECLINED)

    assert recipient_ids(office, AlertType.DECLINED) == [bob.pk]
    assert recipient_ids(office, AlertType.ACTIVATED) == sorted([alice.pk, bob.pk])
    # Her choice for Maple Dental does not touch Birch Smiles.
    assert recipient_ids(other_office, AlertType.DECLINED) == [alice.pk]


def test_a_preference_switched_back_on_counts_as_on(office, alice):
    NotificationPreference.objects.create(user=alice, practice=office, alert_type=AlertType.DECLINED, enabled=True)
    assert recipient_ids(office, AlertType.DECLINED) == [alice.pk]


def test_only_active_staff_members_with_an_email_are_team_members(office, other_office, alice):
    no_email = staff_member(office, Role.VIEWER, username="noemail", email="")
    inactive = staff_member(office, Role.VIEWER, username="gone", email="gone@maple.example")
    inactive.is_active = False
    inactive.save()
    staff_member(other_office, Role.ADMIN, username="elsewhere", email="elsewhere@birch.example")
    UserFactory(username="patientuser", email="p@example.com")  # not staff, no membership
    assert no_email.pk not in recipient_ids(office, AlertType.DECLINED)
    assert recipient_ids(office, AlertType.DECLINED) == [alice.pk]


def test_the_multi_office_member_gets_each_offices_alerts_by_its_own_rules(
    office, other_office, alice, django_capture_on_commit_callbacks
):
    Membership.objects.create(user=alice, practice=other_office, role=Role.FRONT_DESK)
    switch_off(alice, other_office, AlertType.ACTIVATED)
    maple_app = ApplicationFactory(practice=office, lender_application_id="M-1")
    birch_app = ApplicationFactory(practice=other_office, lender_application_id="B-1")

    with django_capture_on_commit_callbacks(execute=True):
        for application in (maple_app, birch_app):
            services.record_status_change(
                application=application, status="activated", occurred_at=NOW, actor=None, now=NOW
            )

    assert list(NotificationDelivery.objects.values_list("application_id", "recipient_id")) == [(maple_app.pk, alice.pk)]
    assert len(mail.outbox) == 1
    assert "Maple Dental" in mail.outbox[0].body


def test_a_digest_member_gets_no_immediate_email(office, alice, bob, django_capture_on_commit_callbacks):
    NotificationSettings.objects.create(user=bob, practice=office, delivery_mode=DeliveryMode.DIGEST)
    application = ApplicationFactory(practice=office)
    with django_capture_on_commit_callbacks(execute=True):
        services.record_status_change(application=application, status="declined", occurred_at=NOW, actor=None, now=NOW)

    assert [m.to for m in mail.outbox] == [[alice.email]]
    bob_delivery = NotificationDelivery.objects.get(recipient=bob)
    assert (bob_delivery.delivery_mode, bob_delivery.status) == (DeliveryMode.DIGEST, DeliveryStatus.PENDING)


def test_an_alert_switched_off_before_sending_is_cancelled(office, alice, django_capture_on_commit_callbacks):
    application = ApplicationFactory(practice=office)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.record_status_change(application=application, status="declined", occurred_at=NOW, actor=None, now=NOW)
    switch_off(alice, office, AlertType.DECLINED)
    for callback in callbacks:
        callback()
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == DeliveryStatus.CANCELLED
    assert "turned this alert type off" in delivery.last_error
    assert mail.outbox == []


def test_a_member_who_left_gets_nothing(office, alice, django_capture_on_commit_callbacks):
    application = ApplicationFactory(practice=office)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.record_status_change(application=application, status="declined", occurred_at=NOW, actor=None, now=NOW)
    Membership.objects.filter(user=alice).delete()
    for callback in callbacks:
        callback()
    assert NotificationDelivery.objects.get().status == DeliveryStatus.CANCELLED
    assert mail.outbox == []
