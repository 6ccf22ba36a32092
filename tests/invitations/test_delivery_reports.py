"""Delivery reports from the email service (anymail's tracking signal)."""

import pytest
from anymail.signals import AnymailTrackingEvent, tracking

from invitations import eligibility
from invitations.models import EventKind, Status
from patients.models import EmailOptOut, OptOutReason
from tests.clock import NOW
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db


def report(invitation, event_type, **extra):
    event = AnymailTrackingEvent(
        event_type=event_type, metadata={"invitation": str(invitation.public_id)}, message_id="m-1", **extra
    )
    tracking.send(sender=object, event=event, esp_name="Test")


def test_a_hard_bounce_fails_the_invitation_and_blocks_the_address_until_it_changes():
    invitation = InvitationFactory()
    report(invitation, "bounced", description="550 mailbox unavailable")
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
    assert "bounced" in invitation.failure_reason and "550" in invitation.failure_reason
    assert EventKind.BOUNCED in invitation.events.values_list("kind", flat=True)
    patient = invitation.patient
    patient.refresh_from_db()
    # The bounced link cannot be used, so the one-hour rule does not hold a corrected address back.
    assert [r.code for r in eligibility.reasons_for(patient, now=NOW)] == ["hard_bounce"]
    patient.email = "fixed@example.com"
    patient.save()
    assert eligibility.reasons_for(patient, now=NOW) == []


def test_a_delivery_is_recorded_on_the_timeline():
    invitation = InvitationFactory()
    report(invitation, "delivered")
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT
    assert list(invitation.events.values_list("kind", flat=True)) == [EventKind.DELIVERED]


def test_a_spam_complaint_opts_the_address_out():
    invitation = InvitationFactory()
    report(invitation, "complained")
    entry = EmailOptOut.objects.get(practice=invitation.practice, email=invitation.email)
    assert entry.reason == OptOutReason.SPAM_COMPLAINT
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED


def test_reports_about_other_emails_are_ignored():
    invitation = InvitationFactory()
    tracking.send(sender=object, event=AnymailTrackingEvent(event_type="bounced", metadata={}), esp_name="Test")
    tracking.send(
        sender=object, event=AnymailTrackingEvent(event_type="bounced", metadata={"invitation": "not-a-uuid"}), esp_name="Test"
    )
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT


def test_a_report_without_metadata_is_matched_by_the_provider_message_id():
    invitation = InvitationFactory(provider_message_id="esp-123")
    tracking.send(sender=object, event=AnymailTrackingEvent(event_type="bounced", message_id="esp-123"), esp_name="Test")
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
