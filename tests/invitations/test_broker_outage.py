"""The broker is down when an invitation is created: the request still succeeds, nothing is lost,
and the requeue sweep sends it once the broker is back."""

import datetime

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from invitations import services
from invitations.models import Invitation, Source, Status
from invitations.tasks import send_invitation
from tests.clock import NOW
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(send_invitation, "apply_async", refuse)


@pytest.fixture
def enqueued_sends(monkeypatch):
    calls = []
    monkeypatch.setattr(send_invitation, "apply_async", lambda args=(), **kwargs: calls.append(args[0]))
    return calls


def test_adding_a_patient_with_the_broker_down_still_saves_and_invites(client_a, practice_a, broker_down, django_capture_on_commit_callbacks, caplog):
    data = {
        "practice": practice_a.pk, "chart_number": "BR-1", "first_name": "Ann", "last_name": "Lee",
        "date_of_birth": "1980-01-01", "birth_sex": "F", "zip_code": "02139", "email": "ann@example.com",
        "email_consent": "on", "send_invitation": "on", "preferred_language": "en",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(reverse("admin:patients_patient_add"), data)
    assert response.status_code == 302
    invitation = Invitation.objects.get(patient__chart_number="BR-1")
    assert invitation.status == Status.PENDING
    assert "left for the sweep" in caplog.text and "ann@example.com" not in caplog.text


def test_the_sweep_requeues_a_lost_send_after_two_minutes(enqueued_sends, django_capture_on_commit_callbacks):
    lost = InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_unsent(now=NOW + datetime.timedelta(minutes=2) - datetime.timedelta(seconds=1)) == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_unsent(now=NOW + datetime.timedelta(minutes=2)) == 1
    assert enqueued_sends == [lost.pk]


def test_the_sweep_leaves_claimed_sent_bulk_and_expired_invitations_alone(enqueued_sends, django_capture_on_commit_callbacks):
    later = NOW + datetime.timedelta(minutes=5)
    InvitationFactory(created_at=NOW)  # sent
    InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW, source=Source.BULK)
    InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW - datetime.timedelta(days=8))
    claimed = InvitationFactory(status=Status.PENDING, sent_at=None, created_at=NOW)
    Invitation.objects.filter(pk=claimed.pk).update(sending_started_at=later - datetime.timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_unsent(now=later) == 0
    assert enqueued_sends == []



def test_a_send_waiting_for_its_retry_is_not_requeued_and_a_lost_retry_chain_is_given_up(enqueued_sends, django_capture_on_commit_callbacks):
    """A temporary email-service error releases the claim for the task's own retry; the sweep must
    not start a second chain (each would mail a new link), only give up when the chain was lost."""
    invitation = InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW)
    assert invitation.claim_for_sending(NOW) is not None
    invitation.release_claim(NOW, detail="HTTP 503")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.requeue_unsent(now=NOW + datetime.timedelta(hours=3) - datetime.timedelta(seconds=1)) == 0
    invitation.refresh_from_db()
    assert invitation.status == Status.PENDING and enqueued_sends == []
    services.requeue_unsent(now=NOW + datetime.timedelta(hours=3))
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED and "could not be reached" in invitation.failure_reason
    assert enqueued_sends == []


def test_an_invitation_that_never_reached_the_email_service_does_not_block_a_resend():
    from invitations import eligibility

    refused = InvitationFactory(status=Status.PENDING, sent_at=None, token_hash=None, created_at=NOW)
    refused.fail(NOW, reason="HTTP 503")
    assert "invited_recently" not in [r.code for r in eligibility.reasons_for(refused.patient, now=NOW + datetime.timedelta(minutes=5))]
    # Sent, then bounced: the link can no longer be used, so a corrected address may get a new one
    # at once (the one-hour rule protects only an address that has a working link).
    bounced = InvitationFactory(created_at=NOW)
    bounced.fail(NOW, reason="bounced")
    assert "invited_recently" not in [r.code for r in eligibility.reasons_for(bounced.patient, now=NOW + datetime.timedelta(minutes=5))]
