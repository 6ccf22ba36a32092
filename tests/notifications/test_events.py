"""Applying lender events: state order, out-of-order and duplicate events, immediate alerts."""

import datetime

import pytest
from django.core import mail

from notifications import services
from notifications.models import (
    INCOMPLETE_AFTER,
    AlertType,
    ApplicationStatus,
    DeliveryStatus,
    EventOutcome,
    LenderEvent,
    NotificationDelivery,
    PaymentPlanApplication,
)
from tests.clock import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("team", "frozen")]


def apply(patient, event_type, *, event_id, occurred_at, application_id="APP-1"):
    return services.apply_event(
        practice_id=patient.practice_id,
        event_id=event_id,
        lender_application_id=application_id,
        patient_id=patient.pk,
        event_type=event_type,
        occurred_at=occurred_at,
        now=NOW,
    )


def test_it_creates_the_application_on_its_first_event(plan_patient):
    started = NOW - datetime.timedelta(hours=1)
    result = apply(plan_patient, "started", event_id="e1", occurred_at=started)

    application = PaymentPlanApplication.objects.get()
    assert result.outcome == "applied"
    assert (application.status, application.started_at, application.patient) == ("started", started, plan_patient)
    assert application.incomplete_due_at == started + INCOMPLETE_AFTER
    assert application.open_approval_due_at is None
    assert LenderEvent.objects.get().outcome == EventOutcome.APPLIED


def test_it_moves_forward_through_the_steps(plan_patient, django_capture_on_commit_callbacks):
    t = NOW - datetime.timedelta(days=3)
    with django_capture_on_commit_callbacks(execute=True):
        for i, step in enumerate(["started", "pre_qualified", "approved", "activated"]):
            apply(plan_patient, step, event_id=f"e{i}", occurred_at=t + datetime.timedelta(hours=i))

    application = PaymentPlanApplication.objects.get()
    assert application.status == ApplicationStatus.ACTIVATED
    assert [application.started_at, application.pre_qualified_at, application.approved_at, application.activated_at] == [
        t + datetime.timedelta(hours=i) for i in range(4)
    ]
    assert application.incomplete_due_at is None and application.open_approval_due_at is None


def test_an_older_event_never_moves_the_application_back(plan_patient, django_capture_on_commit_callbacks):
    approved = NOW - datetime.timedelta(hours=2)
    pre_qualified = NOW - datetime.timedelta(hours=3)
    with django_capture_on_commit_callbacks(execute=True):
        apply(plan_patient, "approved", event_id="e-approved", occurred_at=approved)
        result = apply(plan_patient, "pre_qualified", event_id="e-prequal", occurred_at=pre_qualified)
        apply(plan_patient, "started", event_id="e-started", occurred_at=NOW - datetime.timedelta(hours=4))

    application = PaymentPlanApplication.objects.get()
    assert result.outcome == "recorded"
    assert application.status == ApplicationStatus.APPROVED
    # The late steps' times are still recorded...
    assert application.pre_qualified_at == pre_qualified
    assert application.started_at == NOW - datetime.timedelta(hours=4)
    # ...but a late "started" does not schedule an incomplete alert, and no pre-qualified alert goes out.
    assert application.incomplete_due_at is None
    assert application.open_approval_due_at == approved + datetime.timedelta(hours=48)
    assert not NotificationDelivery.objects.exists()
    assert mail.outbox == []
    assert set(LenderEvent.objects.values_list("event_id", "outcome")) == {
        ("e-approved", "applied"),
        ("e-prequal", "recorded"),
        ("e-started", "recorded"),
    }


def test_a_step_time_already_known_is_kept(plan_patient):
    first = NOW - datetime.timedelta(days=2)
    apply(plan_patient, "started", event_id="e1", occurred_at=first)
    apply(plan_patient, "started", event_id="e2", occurred_at=NOW - datetime.timedelta(days=1))
    assert PaymentPlanApplication.objects.get().started_at == first


def test_declined_is_not_overridden_by_a_later_approval(plan_patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        apply(plan_patient, "started", event_id="e1", occurred_at=NOW - datetime.timedelta(hours=5))
        apply(plan_patient, "declined", event_id="e2", occurred_at=NOW - datetime.timedelta(hours=4))
        apply(plan_patient, "approved", event_id="e3", occurred_at=NOW - datetime.timedelta(hours=3))
    application = PaymentPlanApplication.objects.get()
    assert application.status == ApplicationStatus.DECLINED
    assert application.approved_at is not None
    assert application.open_approval_due_at is None


def test_an_approval_is_not_overridden_by_a_decline(plan_patient):
    apply(plan_patient, "approved", event_id="e1", occurred_at=NOW - datetime.timedelta(hours=5))
    apply(plan_patient, "declined", event_id="e2", occurred_at=NOW - datetime.timedelta(hours=4))
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.APPROVED


def test_activation_wins_over_everything(plan_patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        apply(plan_patient, "declined", event_id="e1", occurred_at=NOW - datetime.timedelta(hours=5))
        apply(plan_patient, "activated", event_id="e2", occurred_at=NOW - datetime.timedelta(hours=4))
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.ACTIVATED


def test_the_same_event_id_is_applied_once(plan_patient, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = apply(plan_patient, "declined", event_id="dup-1", occurred_at=NOW)
        second = apply(plan_patient, "declined", event_id="dup-1", occurred_at=NOW)
        # Even with different content, an event id already seen changes nothing.
        third = apply(plan_patient, "activated", event_id="dup-1", occurred_at=NOW)

    assert (first.outcome, second.outcome, third.outcome) == ("applied", "duplicate", "duplicate")
    assert LenderEvent.objects.count() == 1
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.DECLINED
    assert NotificationDelivery.objects.filter(status=DeliveryStatus.SENT).count() == len(team)
    assert len(mail.outbox) == len(team)


def test_event_ids_are_per_practice(plan_patient, other_office, django_capture_on_commit_callbacks):
    from tests.factories import PatientFactory

    other_patient = PatientFactory(practice=other_office)
    apply(plan_patient, "started", event_id="same-id", occurred_at=NOW)
    result = apply(other_patient, "started", event_id="same-id", occurred_at=NOW)
    assert result.outcome == "applied"
    assert PaymentPlanApplication.objects.count() == 2


def test_an_application_cannot_switch_patients(plan_patient):
    from tests.factories import PatientFactory

    apply(plan_patient, "started", event_id="e1", occurred_at=NOW)
    stranger = PatientFactory(practice=plan_patient.practice)
    with pytest.raises(services.EventRejected) as caught:
        apply(stranger, "approved", event_id="e2", occurred_at=NOW)
    assert caught.value.code == "patient_mismatch"
    assert PaymentPlanApplication.objects.get().status == ApplicationStatus.STARTED
    assert LenderEvent.objects.count() == 1


@pytest.mark.parametrize(
    "event_type,alert_type,label",
    [
        ("declined", AlertType.DECLINED, "Declined"),
        ("activated", AlertType.ACTIVATED, "Payment plan activated"),
        ("pre_qualified", AlertType.PRE_QUALIFIED, "Pre-qualified"),
    ],
)
def test_each_immediate_alert_goes_to_every_member_once(
    plan_patient, team, event_type, alert_type, label, django_capture_on_commit_callbacks
):
    apply(plan_patient, "started", event_id="e0", occurred_at=NOW - datetime.timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        apply(plan_patient, event_type, event_id="e1", occurred_at=NOW - datetime.timedelta(hours=1))
        # Nothing is sent before the transaction commits.
        assert mail.outbox == []
    assert len(callbacks) == len(team)

    deliveries = NotificationDelivery.objects.all()
    assert {(d.alert_type, d.recipient_id, d.status) for d in deliveries} == {
        (alert_type, member.pk, DeliveryStatus.SENT) for member in team
    }
    assert all(d.sent_at == NOW and d.attempts == 1 for d in deliveries)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(member.email for member in team)
    assert all(m.subject.startswith(label + ":") for m in mail.outbox)


@pytest.mark.parametrize("event_type", ["started", "approved"])
def test_started_and_approved_send_nothing_at_once(plan_patient, event_type, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        apply(plan_patient, event_type, event_id="e1", occurred_at=NOW)
    assert mail.outbox == []
    assert not NotificationDelivery.objects.exists()
