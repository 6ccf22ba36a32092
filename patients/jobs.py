"""What ops need to trust the background work: each scheduled job's last run, and worker heartbeats.

Beat jobs are wrapped in `tracked_job`, which records start, finish, result and error on one row
per job. Workers write a heartbeat every minute (a beat job that any worker picks up), so "a
worker is alive" is a database read, not a broadcast that could hang.
"""

import datetime
import functools
import logging
from typing import Any, Callable, Optional

from celery.schedules import crontab
from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from django.utils.text import Truncator

logger = logging.getLogger(__name__)

HEARTBEAT_STALE_AFTER = datetime.timedelta(minutes=3)
SUMMARY_MAX_LENGTH = 300
#: How late a scheduled job may start before the status page calls it overdue: beat may be
#: restarting, the worker busy with the job before it.
OVERDUE_GRACE = datetime.timedelta(minutes=5)
#: The JobRun row that records when celery beat last started (not a job: `record_beat_start`).
BEAT_STARTED = "celery beat started"


class JobRun(models.Model):
    """The last run of one scheduled job (one row per job name)."""

    class Result(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        ERROR = "error", "Error"

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True)
    last_finished_at = models.DateTimeField(null=True)
    last_result = models.CharField(max_length=10, choices=Result.choices, blank=True)
    last_summary = models.CharField(max_length=SUMMARY_MAX_LENGTH, blank=True)
    last_error = models.TextField(blank=True)
    runs = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = "scheduled job"
        verbose_name_plural = "system status"

    def __str__(self) -> str:
        return self.name

    def expected_every(self) -> Optional[datetime.timedelta]:
        return schedule_interval(self.name)

    def is_overdue(self, now: datetime.datetime, *, beat_started_at: Optional[datetime.datetime] = None) -> bool:
        return job_is_overdue(self.name, self.last_started_at, now, beat_started_at=beat_started_at)


def next_run_due(
    job_name: str, last_started_at: Optional[datetime.datetime], *, beat_started_at: Optional[datetime.datetime]
) -> Optional[datetime.datetime]:
    """When the job should next have started at the latest: one interval (a crontab's longest gap)
    after its last start, or, for a job that has not run yet, after beat started. None when
    that cannot be told (not periodic, or never run and beat's start not recorded)."""
    every = schedule_interval(job_name)
    since = last_started_at or beat_started_at
    if every is None or since is None:
        return None
    if last_started_at is None and beat_started_at is not None:
        return beat_started_at + every
    return since + every


def job_is_overdue(
    job_name: str, last_started_at: Optional[datetime.datetime], now: datetime.datetime,
    *, beat_started_at: Optional[datetime.datetime] = None,
) -> bool:
    """Overdue only once its next run is later than due by more than OVERDUE_GRACE: a job that has
    not run yet is not overdue while it waits for its first turn."""
    due = next_run_due(job_name, last_started_at, beat_started_at=beat_started_at)
    return due is not None and now > due + OVERDUE_GRACE


def record_beat_start(*, now: Optional[datetime.datetime] = None) -> None:
    """Beat calls this as it starts (portal_project.celery): jobs that have not run yet are due one
    interval after it."""
    JobRun.objects.update_or_create(name=BEAT_STARTED, defaults={"last_started_at": now or timezone.now()})


def beat_started_at() -> Optional[datetime.datetime]:
    return JobRun.objects.filter(name=BEAT_STARTED).values_list("last_started_at", flat=True).first()


class WorkerHeartbeat(models.Model):
    hostname = models.CharField(max_length=200, unique=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.hostname


def schedule_interval(job_name: str) -> Optional[datetime.timedelta]:
    """The interval at which beat runs `job_name` (from CELERY_BEAT_SCHEDULE), if it is periodic."""
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        if entry.get("task") != job_name:
            continue
        schedule = entry.get("schedule")
        if isinstance(schedule, (int, float)):
            return datetime.timedelta(seconds=schedule)
        if isinstance(schedule, datetime.timedelta):
            return schedule
        if isinstance(schedule, crontab):
            return _crontab_longest_gap(schedule)
        run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
        if isinstance(run_every, datetime.timedelta):
            return run_every
    return None


def _crontab_longest_gap(schedule: crontab) -> datetime.timedelta:
    """The longest wait between two runs of a crontab (what "overdue" must allow for)."""
    if len(schedule.day_of_month) < 31 or len(schedule.month_of_year) < 12:
        return datetime.timedelta(days=31)
    if len(schedule.day_of_week) < 7:
        return datetime.timedelta(days=7)
    minutes = sorted(h * 60 + m for h in schedule.hour for m in schedule.minute)
    gaps = [b - a for a, b in zip(minutes, minutes[1:])] + [minutes[0] + 24 * 60 - minutes[-1]]
    return datetime.timedelta(minutes=max(gaps))


def summarize(result: Any) -> str:
    """A job's return value as a line of text for ops: {"sent": 3, "swept": 0} reads "sent 3, swept 0"."""
    if result is None:
        return ""
    if isinstance(result, dict):
        text = ", ".join(f"{str(key).replace('_', ' ')} {summarize(value)}" for key, value in result.items())
    elif isinstance(result, (list, tuple)):
        text = ", ".join(summarize(item) for item in result)
    else:
        text = str(result)
    return Truncator(text).chars(SUMMARY_MAX_LENGTH)


def tracked_job(name: str) -> Callable:
    """Decorate a beat task body: records its start, its result (the return value, see `summarize`) or its error."""

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = timezone.now()
            JobRun.objects.get_or_create(name=name)
            JobRun.objects.filter(name=name).update(
                last_started_at=started, last_result=JobRun.Result.RUNNING, runs=F("runs") + 1
            )
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                # The page shows the kind of error only: database errors quote row values, which
                # may be another practice's. The full error goes to the worker's log.
                logger.exception("Scheduled job %s failed", name)
                JobRun.objects.filter(name=name).update(
                    last_finished_at=timezone.now(),
                    last_result=JobRun.Result.ERROR,
                    last_error=f"{type(exc).__module__}.{type(exc).__name__} (details in the worker log)"[:2000],
                    failures=F("failures") + 1,
                )
                raise
            JobRun.objects.filter(name=name).update(
                last_finished_at=timezone.now(),
                last_result=JobRun.Result.OK,
                last_summary=summarize(result),
                last_error="",
            )
            return result

        return wrapper

    return decorator


def record_heartbeat(hostname: str, *, now: Optional[datetime.datetime] = None) -> None:
    WorkerHeartbeat.objects.update_or_create(hostname=hostname[:200], defaults={"last_seen_at": now or timezone.now()})


def heartbeat_is_fresh(seen: Optional[datetime.datetime], now: datetime.datetime) -> bool:
    """Whether a worker that last reported at `seen` counts as alive (/healthz and the status page)."""
    return seen is not None and now - seen <= HEARTBEAT_STALE_AFTER


def latest_heartbeat() -> Optional[datetime.datetime]:
    return WorkerHeartbeat.objects.aggregate(latest=models.Max("last_seen_at"))["latest"]
