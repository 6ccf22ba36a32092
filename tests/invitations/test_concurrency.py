"""Races between real database connections (PostgreSQL row locks and conditional updates)."""


import pytest

from invitations import services
from invitations.models import Invitation, Status
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.threads import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_invites_of_one_patient_make_one_invitation():
    patient = PatientFactory()
    outcomes = run_together(lambda: services.invite(patient, now=NOW))
    assert sum(outcome.created for outcome in outcomes) == 1
    assert Invitation.objects.filter(patient=patient).count() == 1


def test_concurrent_deliveries_of_one_invitation_send_one_email(mailoutbox, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    patient = PatientFactory()
    invitation = services.invite(patient, now=NOW).invitation
    results = run_together(lambda: services.deliver(invitation.pk, now=NOW))
    assert sorted(results) == ["not-claimed"] * 3 + ["sent"]
    assert len(mailoutbox) == 1
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT


def test_the_sweep_and_an_acceptance_racing_change_the_row_once():
    import datetime

    patient = PatientFactory()
    invitation = services.invite(patient, now=NOW).invitation
    at_expiry = invitation.expires_at

    def sweep():
        return Invitation.objects.expire_due(at_expiry)

    def accept():
        return int(Invitation.objects.get(pk=invitation.pk).accept(at_expiry - datetime.timedelta(seconds=1)))

    results = run_together([sweep, accept, sweep, accept])
    invitation.refresh_from_db()
    assert invitation.status in (Status.EXPIRED, Status.ACCEPTED)
    assert sum(results) == 1  # one transition in total, whoever won
    assert invitation.events.exclude(kind="created").count() == 1


def test_sweeps_running_at_once_expire_each_link_once_with_one_event():
    from invitations.models import EventKind, InvitationEvent
    from tests.invitations.factories import InvitationFactory

    invitations = [InvitationFactory() for _ in range(60)]
    after_expiry = max(invitation.expires_at for invitation in invitations)
    results = run_together(lambda: Invitation.objects.expire_due(after_expiry, batch_size=7), count=3)
    assert sum(results) == 60
    assert Invitation.objects.filter(status=Status.EXPIRED).count() == 60
    events = InvitationEvent.objects.filter(kind=EventKind.EXPIRED)
    assert events.count() == 60
    assert events.values("invitation").distinct().count() == 60


def test_concurrent_registration_attempts_never_evaluate_more_than_five_wrong_answers():
    """Many POSTs on one link at once, wrong dates of birth with the right one among them (a
    guesser with a script): the attempts are serialised on the invitation row, so at most five
    wrong answers are ever evaluated, and the right answer registers only if it came before the
    fifth. Five bursts, each on a fresh link."""
    import datetime

    from django.test import Client
    from django.utils import timezone

    from invitations.models import MAX_FAILED_ATTEMPTS, EventKind, RevokeReason
    from tests.invitations.factories import invitation_with_token

    for burst in range(5):
        invitation, token = invitation_with_token(
            patient=PatientFactory(last_name="Rivera", date_of_birth=datetime.date(1980, 5, 17)), created_at=timezone.now()
        )
        url = f"/invite/{token}/"

        def attempt(day: int):
            def post():
                client = Client(REMOTE_ADDR=f"10.0.{burst}.{day}")  # per-address limits stay out of it
                date = "05/17/1980" if day == 0 else f"05/{day:02d}/1981"
                return client.post(url, {
                    "last_name": "Rivera", "date_of_birth": date, "username": f"rivera{burst}",
                    "password1": "correct horse battery 42", "password2": "correct horse battery 42",
                }).status_code
            return post

        attempts = [attempt(day) for day in range(1, 19)]
        attempts.insert(burst * 4, attempt(0))  # the right answer somewhere in the burst
        statuses = run_together(attempts)
        invitation.refresh_from_db()
        evaluated = invitation.events.filter(kind=EventKind.VERIFICATION_FAILED).count()
        assert invitation.failed_attempts == evaluated <= MAX_FAILED_ATTEMPTS, (burst, evaluated)
        if invitation.status == Status.ACCEPTED:
            assert evaluated < MAX_FAILED_ATTEMPTS and statuses.count(302) == 1
        else:
            assert (invitation.status, invitation.revoke_reason) == (Status.REVOKED, RevokeReason.TOO_MANY_ATTEMPTS)
            assert evaluated == MAX_FAILED_ATTEMPTS and 302 not in statuses
            assert not invitation.patient.__class__.objects.filter(pk=invitation.patient_id, portal_user__isnull=False).exists()
