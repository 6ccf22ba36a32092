"""The System status page reads as ops expect: no false alarms, each check once, summaries as text."""

import datetime
import re

import pytest
import time_machine
from celery.schedules import crontab
from django.test import override_settings
from django.urls import reverse

from patients.jobs import (
    OVERDUE_GRACE, SUMMARY_MAX_LENGTH, JobRun, job_is_overdue, record_beat_start, record_heartbeat, summarize, tracked_job,
)

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.timezone.utc)
STATUS_PAGE = "admin:patients_jobrun_changelist"


def status_page(admin_client) -> str:
    response = admin_client.get(reverse(STATUS_PAGE))
    assert response.status_code == 200
    return response.content.decode()


def row_with(content: str, text: str) -> str:
    """The one table row of the page that mentions `text`."""
    rows = [row for row in re.findall(r"<tr>.*?</tr>", content, flags=re.S) if text in row]
    assert len(rows) == 1, rows
    return rows[0]


# -- the heartbeat job: its last run is the newest worker heartbeat --------------------------


@pytest.mark.parametrize("age", [datetime.timedelta(seconds=30), datetime.timedelta(minutes=3)])
@time_machine.travel(NOW, tick=False)
def test_it_shows_the_heartbeat_job_calm_while_a_worker_is_fresh(admin_client, age):
    record_heartbeat("celery@old", now=NOW - datetime.timedelta(hours=1))
    record_heartbeat("celery@worker-1", now=NOW - age)
    content = status_page(admin_client)
    heartbeat = row_with(content, "portal.heartbeat")
    assert "Overdue" not in heartbeat and "status-bad" not in heartbeat and "never" not in heartbeat
    assert "status-ok" in heartbeat
    assert "status-ok" in row_with(content, "<td>Worker</td>")


@time_machine.travel(NOW, tick=False)
def test_it_shows_the_heartbeat_job_overdue_when_the_newest_heartbeat_is_stale(admin_client):
    record_heartbeat("celery@worker-1", now=NOW - datetime.timedelta(minutes=3, seconds=1))
    content = status_page(admin_client)
    heartbeat = row_with(content, "portal.heartbeat")
    assert "Overdue" in heartbeat and "Stale" in heartbeat
    assert "status-bad" in row_with(content, "<td>Worker</td>")


@time_machine.travel(NOW, tick=False)
def test_it_shows_the_heartbeat_job_overdue_when_no_worker_ever_reported(admin_client):
    heartbeat = row_with(status_page(admin_client), "portal.heartbeat")
    assert "never" in heartbeat and "Overdue" in heartbeat


# -- services: each check once -------------------------------------------------------------


def test_it_shows_each_check_once_and_the_broker_with_its_kind(admin_client):
    content = status_page(admin_client)
    for name in ("Database", "Broker", "Worker"):
        assert content.count(f"<td>{name}</td>") == 1, name
    from patients import health

    # The broker the suite runs on: the embedded filesystem queue, or Redis in CI.
    assert health.broker_kind() in row_with(content, "<td>Broker</td>")


# -- summaries and counts read as text -------------------------------------------------------


@pytest.mark.parametrize(
    "result,text",
    [
        ({"sent": 3, "swept": 0}, "sent 3, swept 0"),
        ({"open_approval": 2, "requeued": 1}, "open approval 2, requeued 1"),
        ([4, 5], "4, 5"),
        (7, "7"),
        ("swept 3", "swept 3"),
        (None, ""),
        ({}, ""),
    ],
)
def test_it_summarizes_a_job_result_as_text(result, text):
    assert summarize(result) == text


def test_it_truncates_a_long_summary_to_fit_its_column():
    text = summarize({f"practice_{n}": n for n in range(200)})
    assert len(text) == SUMMARY_MAX_LENGTH and text.endswith("…")


@override_settings(CELERY_BEAT_SCHEDULE={"sweep": {"task": "tests.sweep", "schedule": 900.0}})
def test_it_shows_a_job_summary_as_text(admin_client):
    tracked_job("tests.sweep")(lambda: {"sent": 3, "swept": 0})()
    sweep = row_with(status_page(admin_client), "tests.sweep")
    assert "sent 3, swept 0" in sweep
    assert "{" not in sweep and "&#x27;" not in sweep


@override_settings(CELERY_BEAT_SCHEDULE={"sweep": {"task": "tests.sweep", "schedule": 900.0}})
def test_it_counts_runs_and_failures_in_words(admin_client):
    def failing():
        raise RuntimeError("boom")

    tracked_job("tests.sweep")(lambda: 1)()
    assert "1 run, 0 failures" in row_with(status_page(admin_client), "tests.sweep")
    with pytest.raises(RuntimeError):
        tracked_job("tests.sweep")(failing)()
    assert "2 runs, 1 failure<" in row_with(status_page(admin_client), "tests.sweep")


# -- times: the time zone is named once ------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_it_names_the_time_zone_once_and_shows_times_in_it(admin_client, settings):
    settings.TIME_ZONE = "America/Chicago"
    record_heartbeat("celery@worker-1", now=NOW - datetime.timedelta(seconds=30))
    content = status_page(admin_client)
    assert content.count("Times in Central Time") == 1
    assert "Nov. 22, 2026, 5:59 AM" in row_with(content, "celery@worker-1")  # 11:59:30 UTC is 5:59 AM CST


def test_intervals_read_as_words(admin_client):
    content = status_page(admin_client)
    assert "every 15 minutes" in content and "every minute" in content and "0:15:00" not in content


# -- no false alarms: a job is overdue only once it is later than due by more than the grace ----------

HOURLY = {"hourly": {"task": "tests.hourly", "schedule": crontab(minute=20)}}
EVERY_15 = {"sweep": {"task": "tests.sweep", "schedule": crontab(minute="*/15")}}


@time_machine.travel(NOW, tick=False)
def test_a_fresh_healthy_install_shows_no_red(admin_client, settings):
    """Minutes after bin/run: beat started, the worker reported as it started, no job has had its
    turn yet. Every job says when its first run is due; nothing is red."""
    record_beat_start(now=NOW - datetime.timedelta(minutes=2))
    record_heartbeat("celery@worker-1", now=NOW - datetime.timedelta(minutes=2))
    content = status_page(admin_client)
    assert 'class="status-bad"' not in content and "Overdue" not in content and "Problem" not in content
    for key in settings.CELERY_BEAT_SCHEDULE:
        if key != "worker-heartbeat":
            assert "Not run yet: first run due by" in row_with(content, f"<td>{key}<br>")
    assert "Celery beat last started Nov. 22, 2026, 11:58 AM." in content


@override_settings(CELERY_BEAT_SCHEDULE=HOURLY)
def test_a_job_that_never_ran_is_overdue_one_interval_and_the_grace_after_beat_started(admin_client):
    started = NOW - datetime.timedelta(hours=1) - OVERDUE_GRACE
    record_beat_start(now=started)
    with time_machine.travel(NOW, tick=False):
        assert "Overdue" not in row_with(status_page(admin_client), "tests.hourly")
    with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
        row = row_with(status_page(admin_client), "tests.hourly")
    assert "Overdue: due by Nov. 22, 2026, 11:55 AM. Is celery beat running?" in row  # in UTC: the server's zone


@override_settings(CELERY_BEAT_SCHEDULE=HOURLY)
def test_an_hourly_job_is_calm_for_its_hour_and_the_grace(admin_client):
    with time_machine.travel(NOW - datetime.timedelta(hours=1) - OVERDUE_GRACE, tick=False):
        tracked_job("tests.hourly")(lambda: "ok")()
    with time_machine.travel(NOW, tick=False):
        assert "Overdue" not in row_with(status_page(admin_client), "tests.hourly")
    with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
        assert "Overdue" in row_with(status_page(admin_client), "tests.hourly")


@override_settings(CELERY_BEAT_SCHEDULE=EVERY_15)
def test_the_overdue_rule_on_both_sides_of_the_boundary():
    last = NOW - datetime.timedelta(minutes=15) - OVERDUE_GRACE
    assert not job_is_overdue("tests.sweep", last, NOW)
    assert job_is_overdue("tests.sweep", last, NOW + datetime.timedelta(seconds=1))
    # Never run, and beat's start unknown: nothing to measure from, so no alarm (the heartbeat says
    # whether beat runs at all).
    assert not job_is_overdue("tests.sweep", None, NOW)
    assert not job_is_overdue("tests.sweep", None, NOW, beat_started_at=NOW - datetime.timedelta(minutes=20))
    assert job_is_overdue("tests.sweep", None, NOW, beat_started_at=NOW - datetime.timedelta(minutes=20, seconds=1))


@override_settings(CELERY_BEAT_SCHEDULE=EVERY_15)
@time_machine.travel(NOW, tick=False)
def test_a_job_waiting_for_beat_says_so(admin_client):
    row = row_with(status_page(admin_client), "tests.sweep")
    assert "Not run yet: runs once celery beat starts" in row and "status-bad" not in row


@time_machine.travel(NOW, tick=False)
def test_beat_records_its_start_as_it_starts():
    from portal_project.celery import record_beat_start as on_beat_init

    on_beat_init(sender=None)
    assert JobRun.objects.get(name="celery beat started").last_started_at == NOW
