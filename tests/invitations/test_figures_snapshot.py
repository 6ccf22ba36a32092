"""The dashboard's stored figures: counted on the first visit, then read in one query; recounted
in the background when old, on "Refresh now", after a bulk run and by the beat job; tenant-scoped."""

import datetime
import json

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.urls import reverse

from invitations import adoption, tasks
from invitations.bulk import runs
from invitations.models import Status
from invitations.models.figures import PracticeFigures
from patients.jobs import JobRun, schedule_interval
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import dashboard_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
MINUTE = datetime.timedelta(minutes=1)
SECOND = datetime.timedelta(seconds=1)
DAY = datetime.timedelta(days=1)


def refresh_url(practice):
    return reverse("admin:invitations_portal_refresh", args=[practice.pk])


def refreshes_enqueued(callbacks) -> list[int]:
    """The practice ids of the recounts among captured on-commit callbacks."""
    return [
        callback.args[1][0] for callback in callbacks
        if getattr(callback, "args", None) and callback.args[0] == tasks.refresh_practice_figures.name
    ]


def stored_total(practice) -> int:
    return PracticeFigures.objects.get(practice=practice).data["total"]


def test_it_counts_on_the_first_visit_and_then_reads_the_snapshot(client_a, practice_a, django_assert_max_num_queries):
    PatientFactory(practice=practice_a)
    assert not PracticeFigures.objects.exists()
    assert client_a.get(dashboard_url(practice_a)).context["figures"].total == 1
    snapshot = PracticeFigures.objects.get(practice=practice_a)
    assert (snapshot.computed_at, snapshot.refresh_requested_at) == (NOW, None)

    PatientFactory(practice=practice_a)
    with django_assert_max_num_queries(12) as captured:
        response = client_a.get(dashboard_url(practice_a))
    assert response.context["figures"].total == 1  # the snapshot, not a count
    assert not any('"patients_patient"' in query["sql"] for query in captured.captured_queries)
    page = " ".join(response.content.decode().split())
    assert "Counted at March 2, 2026, 10:00 AM (0 minutes ago)." in page  # New York, the practice's time zone
    assert "Recounting in the background" not in page


def test_a_snapshot_older_than_ten_minutes_enqueues_one_recount_however_many_visit(
    client_a, practice_a, frozen, django_capture_on_commit_callbacks
):
    client_a.get(dashboard_url(practice_a))
    frozen.shift(adoption.FIGURES_MAX_AGE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = client_a.get(dashboard_url(practice_a)).content.decode()
    assert refreshes_enqueued(callbacks) == [] and "Recounting" not in page  # exactly ten minutes old

    frozen.shift(SECOND)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = client_a.get(dashboard_url(practice_a))
        second = client_a.get(dashboard_url(practice_a))
    assert refreshes_enqueued(callbacks) == [practice_a.pk]
    for response in (first, second):
        page = " ".join(response.content.decode().split())
        assert "Counted at March 2, 2026, 10:00 AM (10 minutes ago)." in page
        assert "Recounting in the background; reload in a moment." in page
    assert PracticeFigures.objects.get(practice=practice_a).refresh_requested_at == NOW + 10 * MINUTE + SECOND


def test_a_recount_request_lost_for_five_minutes_is_made_again(practice_a, frozen, django_capture_on_commit_callbacks):
    adoption.refresh(practice_a, now=NOW)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert adoption.request_refresh(practice_a.pk, now=NOW) is True
        assert adoption.request_refresh(practice_a.pk, now=NOW + adoption.REFRESH_CLAIM_FOR - SECOND) is False
        assert adoption.request_refresh(practice_a.pk, now=NOW + adoption.REFRESH_CLAIM_FOR) is True
    assert refreshes_enqueued(callbacks) == [practice_a.pk, practice_a.pk]


def test_refresh_now_recounts_and_shows_the_new_figures(client_a, practice_a, eager_celery, django_capture_on_commit_callbacks):
    PatientFactory(practice=practice_a)
    client_a.get(dashboard_url(practice_a))
    PatientFactory(practice=practice_a)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(refresh_url(practice_a))
    assert response.status_code == 302 and response["Location"] == dashboard_url(practice_a)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Recounting the figures in the background; reload in a moment."
    ]
    assert client_a.get(dashboard_url(practice_a)).context["figures"].total == 2
    assert PracticeFigures.objects.get(practice=practice_a).refresh_requested_at is None


def test_refresh_now_is_a_post_form_with_csrf(client_a, practice_a):
    page = client_a.get(dashboard_url(practice_a)).content.decode()
    assert f'<form method="post" action="{refresh_url(practice_a)}"' in page
    assert 'value="Refresh now"' in page and "csrfmiddlewaretoken" in page
    assert client_a.get(refresh_url(practice_a)).status_code == 405
    assert PracticeFigures.objects.get(practice=practice_a).refresh_requested_at is None


def test_refreshing_another_practices_figures_is_404_and_enqueues_nothing(
    client_a, practice_b, django_capture_on_commit_callbacks
):
    adoption.refresh(practice_b, now=NOW - DAY)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client_a.post(refresh_url(practice_b)).status_code == 404
    assert refreshes_enqueued(callbacks) == []
    assert PracticeFigures.objects.get(practice=practice_b).refresh_requested_at is None


def test_a_redelivered_recount_does_nothing_once_the_first_landed(practice_a, eager_celery, django_capture_on_commit_callbacks):
    adoption.refresh(practice_a, now=NOW - DAY)
    with django_capture_on_commit_callbacks(execute=True):
        adoption.request_refresh(practice_a.pk, now=NOW)
    assert PracticeFigures.objects.get(practice=practice_a).computed_at == NOW
    PatientFactory(practice=practice_a)
    assert tasks.refresh_practice_figures.run(practice_a.pk) is False
    assert stored_total(practice_a) == 0


def test_a_finished_bulk_run_recounts_the_figures(practice_a, eager_celery, django_capture_on_commit_callbacks):
    PatientFactory.create_batch(3, practice=practice_a)
    before = adoption.refresh(practice_a, now=NOW)
    assert (before.preview.eligible, dict((k, n) for k, _l, n, _s in before.split)["out"]) == (3, 0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = runs.start_run(practice=practice_a, now=NOW)
    assert refreshes_enqueued(callbacks) == [practice_a.pk]
    run.refresh_from_db()
    assert run.sent == 3
    after = adoption.current(practice_a, now=NOW)
    assert dict((k, n) for k, _l, n, _s in after.split)["out"] == 3
    assert after.preview.eligible == 0 and after.preview.skip_counts == {"open_invitation": 3, "invited_recently": 3}


def test_the_beat_job_recounts_stale_and_missing_snapshots_only_and_is_recorded(
    django_capture_on_commit_callbacks,
):
    stale, fresh, never, being_recounted = (PracticeFactory(name=n) for n in ("Stale", "Fresh", "Never", "Busy"))
    for practice in (stale, fresh, never, being_recounted):
        PatientFactory(practice=practice)
    adoption.refresh(stale, now=NOW - adoption.BEAT_REFRESH_AFTER)
    adoption.refresh(fresh, now=NOW - adoption.BEAT_REFRESH_AFTER + SECOND)
    adoption.refresh(being_recounted, now=NOW - DAY)
    PracticeFigures.objects.filter(practice=being_recounted).update(refresh_requested_at=NOW - MINUTE)
    PatientFactory(practice=stale)
    PatientFactory(practice=fresh)

    assert tasks.refresh_all_practice_figures.run() == 2
    assert (stored_total(stale), stored_total(never)) == (2, 1)
    assert PracticeFigures.objects.get(practice=stale).computed_at == NOW
    assert stored_total(fresh) == 1  # counted 8:59 ago: left alone
    assert PracticeFigures.objects.get(practice=being_recounted).computed_at == NOW - DAY  # a worker has it
    job = JobRun.objects.get(name="invitations.refresh_figures")
    assert (job.last_result, job.last_summary) == (JobRun.Result.OK, "2")


def test_the_beat_job_is_scheduled_every_ten_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["invitations-refresh-figures"]
    assert entry["task"] == tasks.refresh_all_practice_figures.name == "invitations.refresh_figures"
    assert schedule_interval("invitations.refresh_figures") == datetime.timedelta(minutes=10)


def test_the_stored_preview_is_what_bulk_preview_counts(practice_a):
    PatientFactory.create_batch(2, practice=practice_a)
    PatientFactory(practice=practice_a, email="")
    PatientFactory(practice=practice_a, email_consent=False, deceased=True)
    PatientFactory(practice=practice_a, portal_user=UserFactory())
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - DAY)
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - 9 * DAY, status=Status.EXPIRED)
    stored = adoption.refresh(practice_a, now=NOW).preview
    live = runs.preview(practice_a, now=NOW)
    assert (stored.considered, stored.eligible, stored.reasons) == (live.considered, live.eligible, live.reasons)
    assert (live.considered, live.eligible) == (6, 3)


def test_figures_round_trip_through_json(practice_a):
    PatientFactory(practice=practice_a, email_consent=False)
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - DAY)
    figures = adoption.figures(practice_a, now=NOW)
    assert figures.not_eligible and figures.preview.reasons and any(m.sent for m in figures.months)
    data = json.loads(json.dumps(figures.to_json()))
    assert adoption.Figures.from_json(data) == figures


def test_a_snapshot_from_before_a_rule_was_removed_still_shows(practice_a):
    figures = adoption.figures(practice_a, now=NOW).to_json()
    figures["not_eligible"].append(["retired_rule", 4])
    figures["preview"]["skip_counts"]["retired_rule"] = 4
    loaded = adoption.Figures.from_json(figures)
    assert loaded.not_eligible == [] and loaded.preview.reasons == []


def test_the_snapshot_names_the_practice_and_time_only(practice_a):
    PatientFactory(practice=practice_a, first_name="Zelda")
    adoption.refresh(practice_a, now=NOW)
    assert str(PracticeFigures.objects.get()) == "Portal figures of Practice A at 2026-03-02 15:00"


def test_the_beat_job_stops_starting_counts_when_its_time_is_up(practice_a, monkeypatch):
    monkeypatch.setattr(tasks, "FIGURES_SWEEP_SECONDS", -1)
    assert tasks.refresh_all_practice_figures.run() == 0
    assert not PracticeFigures.objects.exists()  # the next run counts it, oldest first
