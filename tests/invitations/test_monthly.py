"""The monthly re-invite: when a practice is due (its day, its time zone, once a month), whom
it targets (last invitation expired or failed, a link lifetime ago, under the cap), and the job."""

import datetime

import pytest
import time_machine
from django.conf import settings
from django.core import mail

from invitations import tasks
from invitations.bulk import runs
from invitations.models import Invitation, Source, Status
from invitations.models.bulk_runs import BulkRun, BulkRunKind, BulkRunStatus
from patients.jobs import JobRun
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db
SECOND = datetime.timedelta(seconds=1)
DAY = datetime.timedelta(days=1)
LIFETIME = datetime.timedelta(days=7)
UTC = datetime.timezone.utc


@pytest.fixture
def reinviting_practice():
    return PracticeFactory(monthly_reinvite_enabled=True, monthly_reinvite_day=5, time_zone="America/Los_Angeles")


def with_history(practice, *statuses, last_created_at=NOW - 30 * DAY, **patient_fields):
    """A patient whose invitations had these statuses, oldest first, the last one at `last_created_at`."""
    patient = PatientFactory(practice=practice, **patient_fields)
    for age, status in enumerate(reversed(statuses)):
        InvitationFactory(patient=patient, status=status, created_at=last_created_at - age * 40 * DAY)
    # The factory makes each new row the latest: create oldest first.
    latest = Invitation.objects.filter(patient=patient).order_by("-created_at").first()
    Invitation.objects.filter(patient=patient).update(is_latest=False)
    if latest:
        Invitation.objects.filter(pk=latest.pk).update(is_latest=True)
    return patient


def targeted(practice, now=NOW) -> set[int]:
    patients = runs.candidates(practice, kind=BulkRunKind.MONTHLY, now=now)
    return set(runs.eligibility.eligible(patients, now=now).values_list("pk", flat=True))


# -- who is targeted ---------------------------------------------------------------------------


def test_it_targets_inactive_patients_whose_last_invitation_expired_or_failed(reinviting_practice):
    expired = with_history(reinviting_practice, Status.EXPIRED)
    failed = with_history(reinviting_practice, Status.FAILED)
    ran_out_unswept = with_history(reinviting_practice, Status.SENT)  # 30 days old, still marked sent
    with_history(reinviting_practice)  # never invited: Activate Now's job, not the monthly one
    with_history(reinviting_practice, Status.REVOKED)
    with_history(reinviting_practice, Status.EXPIRED, portal_user=UserFactory())  # registered
    with_history(reinviting_practice, Status.EXPIRED, email_consent=False)  # not eligible any more
    with_history(PracticeFactory(), Status.EXPIRED)  # another practice
    assert targeted(reinviting_practice) == {expired.pk, failed.pk, ran_out_unswept.pk}


def test_never_sooner_than_the_link_lifetime_after_the_last_invitation(reinviting_practice):
    # A failed invitation ends at once; the next may only go a link lifetime after it was made.
    too_soon = with_history(reinviting_practice, Status.FAILED, last_created_at=NOW - LIFETIME + SECOND)
    just_in_time = with_history(reinviting_practice, Status.FAILED, last_created_at=NOW - LIFETIME)
    assert targeted(reinviting_practice) == {just_in_time.pk}
    assert too_soon.pk in targeted(reinviting_practice, now=NOW + SECOND)


def test_at_most_the_cap_of_unanswered_invitations_in_a_row(reinviting_practice):
    assert reinviting_practice.monthly_reinvite_cap == 3
    two = with_history(reinviting_practice, Status.EXPIRED, Status.FAILED)
    three = with_history(reinviting_practice, Status.EXPIRED, Status.EXPIRED, Status.EXPIRED)
    revoked_do_not_count = with_history(reinviting_practice, Status.REVOKED, Status.EXPIRED, Status.EXPIRED)
    assert targeted(reinviting_practice) == {two.pk, revoked_do_not_count.pk}
    reinviting_practice.monthly_reinvite_cap = 4
    assert targeted(reinviting_practice) == {two.pk, three.pk, revoked_do_not_count.pk}


def test_the_count_starts_again_after_an_accepted_invitation(reinviting_practice):
    # The patient registered once, the account was removed, and two links went unanswered since.
    patient = with_history(reinviting_practice, Status.EXPIRED, Status.EXPIRED, Status.ACCEPTED, Status.EXPIRED, Status.EXPIRED)
    assert targeted(reinviting_practice) == {patient.pk}


# -- when it runs --------------------------------------------------------------------------------


def test_a_practice_is_due_from_its_day_in_its_own_time_zone(reinviting_practice):
    # Los Angeles is UTC-8 in early March: the 5th starts at 08:00 UTC.
    assert not runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 3, 5, 8, 0, tzinfo=UTC) - SECOND)
    assert runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 3, 5, 8, 0, tzinfo=UTC))
    assert runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 3, 20, 12, 0, tzinfo=UTC))  # catches up
    reinviting_practice.monthly_reinvite_enabled = False
    assert not runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 3, 20, 12, 0, tzinfo=UTC))


def test_it_runs_once_per_local_month(reinviting_practice):
    BulkRun.objects.create(
        practice=reinviting_practice, kind=BulkRunKind.MONTHLY, status=BulkRunStatus.DONE,
        created_at=datetime.datetime(2026, 3, 5, 8, 0, tzinfo=UTC),
    )
    assert not runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 3, 31, 12, 0, tzinfo=UTC))
    # April 5th in Los Angeles (UTC-7 by then) starts at 07:00 UTC.
    assert not runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 4, 5, 7, 0, tzinfo=UTC) - SECOND)
    assert runs.monthly_is_due(reinviting_practice, now=datetime.datetime(2026, 4, 5, 7, 0, tzinfo=UTC))


def test_the_job_starts_a_monthly_run_that_reinvites_and_records_itself(
    reinviting_practice, eager_celery, django_capture_on_commit_callbacks
):
    patient = with_history(reinviting_practice, Status.EXPIRED)
    with_history(PracticeFactory(), Status.EXPIRED)  # re-invite is off there
    entry = settings.CELERY_BEAT_SCHEDULE["invitations-monthly-reinvites"]
    assert entry["task"] == tasks.start_monthly_reinvites.name
    with time_machine.travel(datetime.datetime(2026, 3, 5, 9, 0, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.start_monthly_reinvites.run() == 1
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.start_monthly_reinvites.run() == 0  # once a month
    run = BulkRun.objects.get()
    assert (run.kind, run.started_by, run.status, run.sent) == (BulkRunKind.MONTHLY, None, BulkRunStatus.DONE, 1)
    assert [m.to for m in mail.outbox] == [[patient.email]]
    assert Invitation.objects.get(patient=patient, is_latest=True).source == Source.MONTHLY
    assert JobRun.objects.get(name="invitations.start_monthly_reinvites").last_result == JobRun.Result.OK


def test_a_running_activate_now_makes_the_monthly_run_wait(reinviting_practice, django_capture_on_commit_callbacks):
    with_history(reinviting_practice, Status.EXPIRED)
    BulkRun.objects.create(practice=reinviting_practice, created_at=NOW)  # Activate Now in progress
    with django_capture_on_commit_callbacks(execute=False):
        assert runs.start_due_monthly_runs(now=datetime.datetime(2026, 3, 5, 9, 0, tzinfo=UTC)) == 0
    assert not BulkRun.objects.filter(kind=BulkRunKind.MONTHLY).exists()


def test_the_resume_sweep_is_scheduled_and_tracked():
    entry = settings.CELERY_BEAT_SCHEDULE["invitations-resume-bulk-runs"]
    assert entry["task"] == tasks.resume_bulk_runs.name
    assert tasks.resume_bulk_runs.run() == 0
    assert JobRun.objects.get(name="invitations.resume_bulk_runs").last_result == JobRun.Result.OK
