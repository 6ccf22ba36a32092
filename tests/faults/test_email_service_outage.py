"""The email service fails for a while: invitations retry, end failed with the reason after the
limit, and can be resent once it is back — with real workers."""

import pytest
from django.utils import timezone

from invitations import services
from invitations.models import EventKind, Invitation, Source, Status
from tests.factories import PatientFactory
from tests.workers import sent_to, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_retries_then_failed_with_the_reason_then_resent(start_worker, mail_dir):
    failing = start_worker(
        TEST_EMAIL_BACKEND="tests.faults.backends.UnavailableBackend",
        PORTAL_SEND_MAX_RETRIES="2",
        PORTAL_SEND_RETRY_BASE_SECONDS="0.2",
    )
    patient = PatientFactory(email="outage@example.com")
    invitation = services.invite(patient, now=timezone.now(), actor=None, source=Source.MANUAL).invitation

    def failed():
        invitation.refresh_from_db()
        return invitation.status == Status.FAILED

    wait_until(failed, timeout=60, message="the invitation to fail after its retries")
    assert "503" in invitation.failure_reason and "Gave up" in invitation.failure_reason
    assert invitation.send_attempts == 3  # the first try and two retries
    assert list(invitation.events.filter(kind=EventKind.SEND_RETRY).values_list("kind", flat=True)).count(EventKind.SEND_RETRY) == 3
    assert sent_to(mail_dir) == {}
    failing.stop()

    start_worker()  # the email service is back
    outcome = services.invite(patient, now=timezone.now(), actor=None, source=Source.RESEND)
    assert outcome.created, outcome.reasons
    wait_until(lambda: Invitation.objects.filter(patient=patient, status=Status.SENT).exists(), message="the resend")
    assert sent_to(mail_dir) == {"outage@example.com": 1}
