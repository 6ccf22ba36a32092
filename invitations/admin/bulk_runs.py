"""The bulk runs list (every Activate Now, monthly re-invite and resend run of the user's
practices, with their figures), and the admin that serves the practice pages beside it: the
dashboard (`invitations.admin.dashboard`), Activate Now and the progress pages
(`invitations.admin.activate_now`) and the invitation editor (`invitations.admin.template_editor`).

Their URLs are this admin's (``get_urls`` + ``admin_site.admin_view``), tenant-scoped through
`PracticeScopedAdmin`: a practice or run of another practice is a 404. Everyone on a practice's team
sees its dashboard; Activate Now, the template editor and the invitation channels (texts on or off,
how Activate Now sends) are for its practice admins and managers; the other portal switches for its
practice admins. Each page about one practice shows its times in that practice's time zone.
"""

import functools
import zoneinfo

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from patients.admin.scoping import PracticeScopedAdmin, ReadOnlyAdmin
from patients.models import BulkChannels, Practice
from patients.timezones import PracticeLocalTimes

from invitations.admin.activate_now import ActivateNowViews
from invitations.admin.dashboard import DashboardViews
from invitations.admin.template_editor import TemplateEditorViews
from invitations.models.bulk_runs import BulkRun


def in_practice_time_zone(view):
    """A page about one practice (its dashboard, Activate Now, its template, one of its runs)
    shows every time in that practice's time zone, header included, whoever looks."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        practice_id = kwargs.get("practice_id")
        if practice_id is None and "run_id" in kwargs:
            practice_id = BulkRun.objects.filter(pk=kwargs["run_id"]).values_list("practice_id", flat=True).first()
        zone = Practice.objects.filter(pk=practice_id).values_list("time_zone", flat=True).first() if practice_id else None
        if zone is None:
            return view(request, *args, **kwargs)
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            response = view(request, *args, **kwargs)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
        return response

    return wrapper


@admin.register(BulkRun)
class BulkRunAdmin(ReadOnlyAdmin, DashboardViews, ActivateNowViews, TemplateEditorViews, PracticeLocalTimes, PracticeScopedAdmin):
    """Read-only: runs start from Activate Now (or the schedule), and the record of who invited whom stays."""

    list_display = ["created_at", "practice", "kind", "status_label", "started_by_label", "figures", "progress_link"]
    list_filter = ["practice", "kind", "status"]
    list_select_related = ["practice", "started_by"]
    list_per_page = 50
    change_list_template = "admin/invitations/bulkrun/change_list.html"

    @admin.display(description="status", ordering="status")
    def status_label(self, obj: BulkRun) -> str:
        return obj.get_status_display()

    @admin.display(description="started by", ordering="started_by")
    def started_by_label(self, obj: BulkRun) -> str:
        return str(obj.started_by) if obj.started_by_id else "Schedule"

    @admin.display(description="figures")
    def figures(self, obj: BulkRun) -> str:
        if obj.is_running:
            return f"{obj.targeted:,} to invite; running"
        figures = (
            f"{obj.targeted:,} targeted, {obj.sent:,} sent, {obj.failed:,} failed, "
            f"{obj.skipped_at_plan + obj.skipped_at_send:,} skipped"
        )
        if obj.channels != BulkChannels.EMAIL or obj.texts_sent or obj.texts_failed:
            figures += f"; {obj.texts_sent:,} text{'s' if obj.texts_sent != 1 else ''} sent, {obj.texts_failed:,} failed"
        return figures

    @admin.display(description="")
    def progress_link(self, obj: BulkRun):
        return format_html('<a href="{}">Progress and summary</a>', reverse("admin:invitations_bulkrun_progress", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object_or_404_scoped(request, object_id)
        return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[run.pk]))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "portal_url": reverse("admin:invitations_portal")}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        def view(fn):
            return self.admin_site.admin_view(in_practice_time_zone(fn))

        return [
            path("portal/", view(self.portal_index_view), name="invitations_portal"),
            path("portal/<int:practice_id>/", view(self.dashboard_view), name="invitations_portal_dashboard"),
            path("portal/<int:practice_id>/activate/", view(self.activate_view), name="invitations_portal_activate"),
            path("portal/<int:practice_id>/refresh/", view(self.refresh_view), name="invitations_portal_refresh"),
            path("portal/<int:practice_id>/template/", view(self.template_view), name="invitations_portal_template"),
            path(
                "portal/<int:practice_id>/template/preview/", view(self.template_preview_view),
                name="invitations_portal_template_preview",
            ),
            path("<int:run_id>/progress/", view(self.progress_view), name="invitations_bulkrun_progress"),
            path("<int:run_id>/progress.json", view(self.progress_json_view), name="invitations_bulkrun_progress_json"),
        ] + super().get_urls()

    def _practice(self, request: HttpRequest, practice_id: int) -> Practice:
        """One of the user's practices, or 404 (another practice's id looks like no practice)."""
        return get_object_or_404(self.scoped_practices(request), pk=practice_id)

    def _run(self, request: HttpRequest, run_id: int) -> BulkRun:
        run = self.get_queryset(request).filter(pk=run_id).first()
        if run is None:
            raise Http404("No such run in your practices.")
        return run

    def _context(self, request: HttpRequest, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **extra}
