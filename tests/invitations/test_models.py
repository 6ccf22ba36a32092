"""The invitation state machine and expiry: one transition per change, races lose cleanly."""

import datetime

import pytest
from django.db import IntegrityError, transaction

from invitations.models import (
    MAX_FAILED_ATTEMPTS,
    EventKind,
    Invitation,
    RevokeReason,
    Status,
    hash_token,
    new_token,
)
from tests.clock import NOW
from tests.invitations.factories import InvitationFactory, invitation_with_token

pytestmark = pytest.mark.django_db
SECOND = datetime.timedelta(seconds=1)
SEVEN_DAYS = datetime.timedelta(days=7)


def test_it_makes_256_bit_tokens_and_stores_only_the_hash():
    token = new_token()
    assert len(token) >= 43  # 32 random bytes, base64url
    invitation, token = invitation_with_token()
    assert invitation.token_hash == hash_token(token)
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().first())


def test_it_finds_an_invitation_by_token_only():
    invitation, token = invitation_with_token()
    assert Invitation.find_by_token(token) == invitation
    assert Invitation.find_by_token(token + "x") is None
    assert Invitation.find_by_token("") is None
    assert Invitation.find_by_token(invitation.token_hash) is None  # the hash is not a token


def test_it_is_usable_until_seven_days_minus_a_second_and_expired_after():
    invitation = InvitationFactory()
    assert invitation.expires_at == NOW + SEVEN_DAYS
    just_before = NOW + SEVEN_DAYS - SECOND
    just_after = NOW + SEVEN_DAYS + SECOND
    assert invitation.is_usable(just_before) and not invitation.is_expired(just_before)
    assert not invitation.is_usable(just_after) and invitation.is_expired(just_after)
    # The queryset states the same rule.
    assert list(Invitation.objects.expired_as_of(just_before)) == []
    assert list(Invitation.objects.usable(just_before)) == [invitation]
    assert list(Invitation.objects.expired_as_of(just_after)) == [invitation]
    assert list(Invitation.objects.usable(just_after)) == []


def test_it_uses_the_practice_link_lifetime_for_expiry(practice_a):
    from invitations import services
    from tests.factories import PatientFactory

    practice_a.link_lifetime_days = 3
    practice_a.save()
    outcome = services.invite(PatientFactory(practice=practice_a), now=NOW)
    assert outcome.invitation.expires_at == NOW + datetime.timedelta(days=3)


def test_it_transitions_once_when_two_callers_race():
    invitation = InvitationFactory()
    stale_copy = Invitation.objects.get(pk=invitation.pk)
    assert invitation.revoke(NOW, reason=RevokeReason.STAFF) is True
    # The second caller holds an old copy that still says "sent": the conditional update loses.
    assert stale_copy.accept(NOW) is False
    assert stale_copy.status == Status.REVOKED  # refreshed
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED
    assert invitation.revoke_reason == RevokeReason.STAFF
    assert list(invitation.events.values_list("kind", flat=True)) == [EventKind.REVOKED]


def test_it_cannot_accept_a_link_that_ran_out_even_before_the_sweep():
    invitation = InvitationFactory()
    assert invitation.accept(NOW + SEVEN_DAYS + SECOND) is False
    assert invitation.accept(NOW + SEVEN_DAYS - SECOND) is True
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED
    assert invitation.accepted_at == NOW + SEVEN_DAYS - SECOND


def test_it_never_reopens_a_finished_invitation():
    invitation = InvitationFactory(status=Status.ACCEPTED)
    assert invitation.revoke(NOW, reason=RevokeReason.STAFF) is False
    assert invitation.fail(NOW, reason="x") is False
    assert invitation.expire(NOW + SEVEN_DAYS * 2) is False
    assert invitation.mark_sent(NOW) is False
    assert not invitation.events.exists()


def test_it_allows_one_open_invitation_per_patient():
    invitation = InvitationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        InvitationFactory(patient=invitation.patient, status=Status.PENDING)
    invitation.revoke(NOW, reason=RevokeReason.RESENT)
    InvitationFactory(patient=invitation.patient, status=Status.PENDING)  # fine now


def test_it_voids_the_link_on_the_fifth_wrong_answer():
    invitation = InvitationFactory()
    for attempt in range(1, MAX_FAILED_ATTEMPTS):
        assert invitation.record_failed_attempt(NOW) is False
        assert invitation.failed_attempts == attempt
    assert invitation.record_failed_attempt(NOW) is True
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED
    assert invitation.revoke_reason == RevokeReason.TOO_MANY_ATTEMPTS
    kinds = list(invitation.events.values_list("kind", flat=True))
    assert kinds == [EventKind.VERIFICATION_FAILED] * MAX_FAILED_ATTEMPTS + [EventKind.REVOKED]


def test_the_sweep_expires_only_links_that_ran_out_in_bulk():
    fresh = InvitationFactory(created_at=NOW - SEVEN_DAYS + SECOND)  # expires a second from now
    stale = [InvitationFactory(created_at=NOW - SEVEN_DAYS - SECOND) for _ in range(3)]
    accepted = InvitationFactory(created_at=NOW - SEVEN_DAYS * 2, status=Status.ACCEPTED)
    assert Invitation.objects.expire_due(NOW, batch_size=2) == 3
    assert Invitation.objects.get(pk=fresh.pk).status == Status.SENT
    assert Invitation.objects.get(pk=accepted.pk).status == Status.ACCEPTED
    for invitation in stale:
        invitation.refresh_from_db()
        assert invitation.status == Status.EXPIRED
        assert invitation.ended_at == NOW
        assert list(invitation.events.values_list("kind", flat=True)) == [EventKind.EXPIRED]
    assert Invitation.objects.expire_due(NOW) == 0  # idempotent


def test_the_sweep_uses_a_bounded_number_of_queries(django_assert_max_num_queries):
    for _ in range(40):
        InvitationFactory(created_at=NOW - SEVEN_DAYS - SECOND)
    with django_assert_max_num_queries(12):
        assert Invitation.objects.expire_due(NOW) == 40


def test_beat_runs_the_expiry_sweep_every_15_minutes_and_the_task_sweeps():
    from django.conf import settings

    from invitations import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["invitations-expire-due"]
    assert entry["task"] == tasks.expire_due_invitations.name
    assert entry["schedule"].minute == {0, 15, 30, 45}
    stale = InvitationFactory(created_at=NOW - SEVEN_DAYS - SECOND)
    import time_machine

    with time_machine.travel(NOW, tick=False):
        assert tasks.expire_due_invitations.run() == 1
    stale.refresh_from_db()
    assert stale.status == Status.EXPIRED
    from patients.jobs import JobRun

    run = JobRun.objects.get(name="invitations.expire_due")  # shown on the system status page
    assert (run.last_result, run.last_summary) == (JobRun.Result.OK, "1")
