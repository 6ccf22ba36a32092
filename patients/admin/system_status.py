"""The system status page for ops: superusers and practice admins.

Registered on JobRun so it has an admin index entry; it shows no practice data, only the health of
the database, broker, workers and every scheduled job, so it is not practice-scoped.
"""

import datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from core.sending import ratelimit

from patients import health, tenancy
from patients.admin.scoping import ReadOnlyAdmin
from patients.jobs import (
    BEAT_STARTED, JobRun, WorkerHeartbeat, beat_started_at, heartbeat_is_fresh, job_is_overdue, latest_heartbeat, next_run_due,
    schedule_interval,
)
from patients.tasks import heartbeat


def can_see_system_status(user) -> bool:
    if not (user.is_active and user.is_staff):
        return False
    ids = tenancy.practice_ids_for(user, "patients.change_practice")
    return ids is None or bool(ids)


def scheduled_jobs(now: datetime.datetime) -> list[dict[str, Any]]:
    """One row per beat entry: when it last ran, its last result, when it is next due, and whether
    it is overdue (later than due by more than the grace: never merely because it has not had its
    first turn yet)."""
    runs = {run.name: run for run in JobRun.objects.all()}
    beat_since = runs[BEAT_STARTED].last_started_at if BEAT_STARTED in runs else None
    jobs = []
    for key, entry in sorted(settings.CELERY_BEAT_SCHEDULE.items()):
        job = {"key": key, "task": entry["task"], "every": _every(schedule_interval(entry["task"]))}
        if entry["task"] == heartbeat.name:
            # Not a tracked job (a JobRun write every minute would be noise): its effect, the newest
            # worker heartbeat, says when it last ran, and it is overdue by the Worker check's rule.
            seen = latest_heartbeat()
            job.update(is_heartbeat=True, last_started_at=seen, overdue=not heartbeat_is_fresh(seen, now))
        else:
            run = runs.get(entry["task"])
            last = run.last_started_at if run else None
            job.update(
                run=run,
                last_started_at=last,
                due_by=next_run_due(entry["task"], last, beat_started_at=beat_since),
                overdue=job_is_overdue(entry["task"], last, now, beat_started_at=beat_since),
            )
        jobs.append(job)
    return jobs


@admin.register(JobRun)
class SystemStatusAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    def has_module_permission(self, request):
        return can_see_system_status(request.user)

    def has_view_permission(self, request, obj=None):
        return can_see_system_status(request.user)

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "title": "System status",
            "opts": self.opts,
            "checks": health.run_all(now),
            "jobs": scheduled_jobs(now),
            "workers": WorkerHeartbeat.objects.all()[:20],
            "beat_started_at": beat_started_at(),
            "email_backend": settings.EMAIL_BACKEND,
            "status_lines": [_sending_rate_line(), *health.status_lines(now)],
            "now": now,
            "time_zone": timezone.get_current_timezone_name(),
        }
        return TemplateResponse(request, "admin/system_status.html", context)


def _every(interval) -> str:
    """ "every 15 minutes" for a timedelta (the schedule's interval), "" when unknown."""
    if interval is None:
        return ""
    seconds = int(interval.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} seconds"


def _sending_rate_line() -> tuple[str, str]:
    """The email provider account's shared rate as the senders see it now."""
    try:
        limiter = ratelimit.limiter("email")
        rate, paused = limiter.rate_in_force(), limiter.paused_for()
    except Exception as exc:  # noqa: BLE001 - the page shows the store is unreachable
        return "Email sending rate", f"cannot be read ({type(exc).__name__})"
    configured = limiter.configured
    text = f"{configured:g} a second (PORTAL_EMAIL_RATE_LIMIT)" if configured else "no limit of ours (PORTAL_EMAIL_RATE_LIMIT unset)"
    if rate and rate != configured:
        text += f"; {rate:.1f} a second learned from the provider's 429 answers"
    if paused:
        text += f"; paused for {paused:.0f} s more (the provider asked)"
    return "Email sending rate", text
