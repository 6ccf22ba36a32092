"""Family access under real concurrency (PostgreSQL connections in threads): a representative's link
is serialised like a patient's own, invites and endings happen once."""

import pytest
from django.contrib.auth import get_user_model

from invitations import representatives
from invitations.models import Invitation
from patients.models.representatives import AccessStatus, AccessNotice, EndReason, RepresentativeAccess
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.family_factories import AccessFactory, born_years_before, child
from tests.invitations.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
User = get_user_model()


def test_a_burst_of_wrong_answers_on_a_representatives_link_evaluates_at_most_five():
    access = AccessFactory(patient=child(PracticeFactory(), last_name="Ruiz"))
    invitation = representatives.invite(access, now=NOW).invitation

    def wrong(n):
        return lambda: representatives.attempt_link(
            invitation.pk, last_name="smith", date_of_birth=access.patient.date_of_birth, now=NOW, via="email",
            username=f"u{n}", password="x-123456789",
        ).outcome

    outcomes = run_together([wrong(n) for n in range(12)])
    assert outcomes.count("mismatch") == 4 and outcomes.count("voided") == 8
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 5


def test_the_right_answer_sent_four_times_at_once_links_one_login():
    access = AccessFactory(patient=child(PracticeFactory(), last_name="Ruiz"))
    invitation = representatives.invite(access, now=NOW).invitation

    def attempt(n):
        return lambda: representatives.attempt_link(
            invitation.pk, last_name="ruiz", date_of_birth=access.patient.date_of_birth, now=NOW, via="email",
            username=f"elena{n}", password="correct horse battery 42",
        ).outcome

    outcomes = run_together([attempt(n) for n in range(4)])
    assert sorted(outcomes) == ["linked", "used", "used", "used"]
    assert User.objects.filter(username__startswith="elena").count() == 1
    access.refresh_from_db()
    assert access.status == AccessStatus.ACTIVE


def test_concurrent_invites_of_one_representative_make_one_invitation():
    access = AccessFactory(patient=child(PracticeFactory()))
    outcomes = run_together(lambda: representatives.invite(access, now=NOW))
    assert sum(outcome.created for outcome in outcomes) == 1
    assert Invitation.objects.filter(access=access).count() == 1


def test_three_runs_of_the_ending_job_at_once_end_each_access_once():
    practice = PracticeFactory(time_zone="America/New_York")
    accesses = [
        AccessFactory(patient=PatientFactory(practice=practice, date_of_birth=born_years_before(18)), status=AccessStatus.ACTIVE)
        for _ in range(6)
    ]
    ended = run_together(lambda: representatives.end_due(now=NOW), count=3)
    assert sum(ended) == 6
    assert RepresentativeAccess.objects.filter(status=AccessStatus.ENDED, end_reason=EndReason.CAME_OF_AGE).count() == 6
    # Each notice at most once, whatever ran it.
    for access in accesses:
        results = run_together(lambda a=access: representatives.send_notice(a.pk, "ended_representative", now=NOW), count=3)
        assert sorted(results) == ["sent", "sent-before", "sent-before"]
    assert AccessNotice.objects.count() == 6
