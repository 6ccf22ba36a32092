"""A single invitation (new patient, manual invite, resend) through anymail's real backends to
the provider stand-in: the shared rate, the provider's Retry-After, and each error class."""

import re

import pytest

from core.sending import ratelimit
from invitations import services, tasks
from invitations.models import EventKind, Invitation, Source, Status, hash_token
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db


def invite(**patient_fields) -> Invitation:
    patient = PatientFactory(practice=PracticeFactory(name="Maple Street Dental"), **patient_fields)
    outcome = services.invite(patient, now=NOW, source=Source.MANUAL)
    assert outcome.created, outcome.reasons
    return outcome.invitation


def test_a_single_invitation_is_sent_with_a_working_link(use_provider, ticking):
    standin = use_provider("postmark")
    invitation = invite()
    assert tasks.send_invitation.run(invitation.pk) == "sent"
    invitation.refresh_from_db()
    message = standin.accepted()[0]
    token = re.search(r"/invite/([A-Za-z0-9_-]+)/", message["text"]).group(1)
    assert invitation.token_hash == hash_token(token) and invitation.provider_message_id == message["message_id"]
    assert message["metadata"] == {"invitation": str(invitation.public_id)}


def test_a_throttled_send_is_retried_no_sooner_than_the_provider_asked_and_pauses_everyone(use_provider, monkeypatch, ticking):
    standin = use_provider("postmark")
    standin.configure(rate_limit=0.01, burst=1)  # one call, then wait 100 s
    assert tasks.send_invitation.run(invite().pk) == "sent"
    second = invite()
    retries = []
    monkeypatch.setattr(tasks.send_invitation, "retry", lambda *, exc, countdown: retries.append(countdown) or RuntimeError("retry"))
    with pytest.raises(RuntimeError):
        tasks.send_invitation.run(second.pk)
    assert retries == [100]  # the provider's Retry-After, longer than our first backoff (30 s)
    second.refresh_from_db()
    assert second.status == Status.PENDING and second.sending_started_at is None
    assert second.events.filter(kind=EventKind.SEND_RETRY, detail__contains="HTTP 429").exists()
    assert ratelimit.limiter("email").paused_for() > 90  # every sender of the account holds back


def test_an_address_the_provider_refuses_fails_at_once_with_its_reason(use_provider, ticking):
    use_provider("amazon_ses")
    invitation = invite(email="inactive.reader@example.com")
    assert tasks.send_invitation.run(invitation.pk) == "failed"
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
    assert invitation.failure_reason.startswith("AnymailAPIError [MessageRejected]")


def test_a_refused_account_is_retried_and_fails_no_patient(use_provider, monkeypatch, ticking):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    invitation = invite()
    monkeypatch.setattr(tasks.send_invitation, "retry", lambda *, exc, countdown: RuntimeError("retry"))
    with pytest.raises(RuntimeError):
        tasks.send_invitation.run(invitation.pk)
    invitation.refresh_from_db()
    assert invitation.status == Status.PENDING


def test_a_send_past_the_shared_pause_waits_as_a_retry_not_a_sleeping_worker(use_provider, monkeypatch, ticking):
    use_provider("postmark")
    ratelimit.limiter("email").slow_down(600)  # another worker was told to wait ten minutes
    invitation = invite()
    retries = []
    monkeypatch.setattr(tasks.send_invitation, "retry", lambda *, exc, countdown: retries.append(countdown) or RuntimeError("retry"))
    with pytest.raises(RuntimeError):
        tasks.send_invitation.run(invitation.pk)
    # Asked again when the account's slot comes (not every 30 s, spending its retries on a pause it
    # was told about); the worker did not sleep 600 s.
    assert len(retries) == 1 and 590 < retries[0] <= 600
