"""The system status page for ops: superusers and practice admins.

Registered on JobRun so it has an admin index entry; it shows no practice data, only the health of
the database, broker, workers and every scheduled job, so it is not practice-scoped.
"""

from django.conf import settings
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from invitations.tracking import latest_received_at

from . import health, tenancy
from .jobs import JobRun, WorkerHeartbeat, schedule_interval


def can_see_system_status(user) -> bool:
    if not (user.is_active and user.is_staff):
        return False
    ids = tenancy.practice_ids_for(user, "patients.change_practice")
    return ids is None or bool(ids)


@admin.register(JobRun)
class SystemStatusAdmin(admin.ModelAdmin):
    def has_module_permission(self, request):
        return can_see_system_status(request.user)

    def has_view_permission(self, request, obj=None):
        return can_see_system_status(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        now = timezone.now()
        runs = {run.name: run for run in JobRun.objects.all()}
        jobs = []
        for key, entry in sorted(settings.CELERY_BEAT_SCHEDULE.items()):
            run = runs.get(entry["task"])
            jobs.append(
                {
                    "key": key,
                    "task": entry["task"],
                    "every": schedule_interval(entry["task"]),
                    "run": run,
                    "overdue": run.is_overdue(now) if run else True,
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "System status",
            "opts": self.opts,
            "checks": health.run_all(now),
            "jobs": jobs,
            "workers": WorkerHeartbeat.objects.all()[:20],
            "email_backend": settings.EMAIL_BACKEND,
            "delivery_reports_at": latest_received_at(),
            "broker_kind": health.broker_kind(),
            "now": now,
        }
        return TemplateResponse(request, "admin/system_status.html", context)
