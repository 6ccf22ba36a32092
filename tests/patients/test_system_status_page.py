"""The System status page reads as ops expect: no false alarms, each check once, summaries as text."""

import datetime
import re

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse

from patients.jobs import SUMMARY_MAX_LENGTH, record_heartbeat, summarize, tracked_job

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
    assert content.count("Times in America/Chicago") == 1
    assert "05:59:30" in row_with(content, "celery@worker-1")  # 11:59:30 UTC is 05:59:30 CST


def test_intervals_read_as_words(admin_client):
    content = status_page(admin_client)
    assert "every 15 minutes" in content and "every minute" in content and "0:15:00" not in content
