"""The portal access pages of the admin: the per-practice dashboard, Activate Now (preview,
confirm, progress), the bulk runs list and the invitation template editor.

All are custom views of `BulkRunAdmin` (``get_urls`` + ``admin_site.admin_view``) and are
tenant-scoped through `PracticeScopedAdmin`: a practice or run of another practice is a 404.
Everyone on a practice's team sees its dashboard; Activate Now, the template editor and the
invitation channels (texts on or off, how Activate Now sends) are for its practice admins and
managers; the other portal switches for its practice admins.
"""

import functools
import zoneinfo
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from patients import audit, tenancy
from patients.admin_scoping import PracticeScopedAdmin
from patients.audit import AuditAction
from patients.models import BulkChannels, Practice

from invitations import eligibility
from invitations.bulk import runs
from invitations import adoption
from invitations.permissions import can_change_switches, can_manage_portal
from invitations.admin.template_editor import TemplateEditorViews
from invitations.models.bulk_runs import BulkRun
from invitations.vocabulary import Channel


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


def _duration(seconds) -> str:
    """"about 3 minutes", for the estimated time left ("" when unknown)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"about {round(minutes / 60, 1):g} hours"


#: What a skip reason holds back (an eligibility rule's channel).
CHANNEL_OF_RULE = {"": "The invitation", Channel.EMAIL: "The email", Channel.TEXT: "The text"}


def _text_totals(run: BulkRun, totals: dict) -> dict:
    """{"texts_sent": n, "texts_failed": n} for a run that sends texts (its channels say so, or
    it has sent or failed some), once the chunk totals count texts; else nothing."""
    if "texts_sent" not in totals:
        return {}
    texts = {"texts_sent": totals.get("texts_sent", 0), "texts_failed": totals.get("texts_failed", 0)}
    if getattr(run, "channels", BulkChannels.EMAIL) == BulkChannels.EMAIL and not any(texts.values()):
        return {}
    return texts


class PortalSwitchesForm(forms.ModelForm):
    class Meta:
        model = Practice
        fields = [
            "invitations_enabled", "activation_email_enabled", "link_lifetime_days",
            "monthly_reinvite_enabled", "monthly_reinvite_day", "monthly_reinvite_cap",
        ]


class ChannelsForm(forms.ModelForm):
    """Whether the practice invites by text, and how Activate Now and the monthly re-invite send.
    A choice with texts is kept while texts are off (the runs then send emails only), so turning
    texts off for a while does not lose it."""

    #: Posted with the form, so the dashboard tells it from the portal switches' form.
    FORM_NAME = "channels"

    class Meta:
        model = Practice
        fields = ["text_invitations_enabled", "bulk_channels"]
        widgets = {"bulk_channels": forms.RadioSelect}


@admin.register(BulkRun)
class BulkRunAdmin(TemplateEditorViews, PracticeScopedAdmin):
    list_display = ["created_at", "practice", "kind", "status_label", "started_by_label", "figures", "progress_link"]
    list_filter = ["practice", "kind", "status"]
    list_select_related = ["practice", "started_by"]
    list_per_page = 50
    change_list_template = "admin/invitations/bulkrun/change_list.html"

    def has_add_permission(self, request, *args):
        return False  # runs start from Activate Now on the portal access page

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the record of who invited whom stays

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

    # -- urls ----------------------------------------------------------------------------

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

    # -- helpers -------------------------------------------------------------------------

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

    def _patient_list_url(self, request: HttpRequest, practice: Practice, **params) -> str:
        ids = tenancy.practice_ids_for(request.user, "patients.view_patient")
        if ids is None or len(ids) > 1:
            params = {"practice__id__exact": practice.pk, **params}
        return reverse("admin:patients_patient_changelist") + "?" + urlencode(params)

    # -- the dashboard ---------------------------------------------------------------------

    def portal_index_view(self, request: HttpRequest):
        practices = list(self.scoped_practices(request))
        if len(practices) == 1:
            return HttpResponseRedirect(reverse("admin:invitations_portal_dashboard", args=[practices[0].pk]))
        return TemplateResponse(
            request, "admin/invitations/dashboard_index.html",
            self._context(request, "Portal access", practices=practices),
        )

    def dashboard_view(self, request: HttpRequest, practice_id: int):
        practice = self._practice(request, practice_id)
        may_switch = can_change_switches(request.user, practice.pk)
        may_manage = can_manage_portal(request.user, practice.pk)
        form = PortalSwitchesForm(instance=practice)
        channels_form = ChannelsForm(instance=practice)
        if request.method == "POST":
            if request.POST.get("form") == ChannelsForm.FORM_NAME:
                if not may_manage:
                    raise PermissionDenied("Only the practice's admins and managers choose how invitations are sent.")
                channels_form = ChannelsForm(request.POST, instance=practice)
                if self._save_settings(request, practice, channels_form, "Invitation channels saved."):
                    return HttpResponseRedirect(request.path)
            else:
                if not may_switch:
                    raise PermissionDenied("Only the practice's admins change its portal settings.")
                form = PortalSwitchesForm(request.POST, instance=practice)
                if self._save_settings(request, practice, form, "Portal settings saved."):
                    return HttpResponseRedirect(request.path)
        for editable, shown in ((may_switch, form), (may_manage, channels_form)):
            if not editable:
                for field in shown.fields.values():
                    field.disabled = True
        now = timezone.now()
        figures = adoption.current(practice, now=now)
        recent_runs = list(BulkRun.objects.filter(practice=practice).select_related("started_by")[:5])
        context = self._context(
            request, f"Portal access: {practice.name}",
            practice=practice,
            figures=figures,
            split=[
                (label, count, self._patient_list_url(request, practice, portal_status=status, portal="no"))
                for _key, label, count, status in figures.split
            ],
            not_eligible=[
                (eligibility.RULES_BY_CODE[code], count, self._patient_list_url(request, practice, no_invite=code))
                for code, count in figures.not_eligible
            ],
            total_url=self._patient_list_url(request, practice),
            active_url=self._patient_list_url(request, practice, portal="yes"),
            inactive_url=self._patient_list_url(request, practice, portal="no"),
            chart=adoption.chart_svg(figures.months),
            months=figures.months,
            by_channel=figures.by_channel,
            registrations=sum(month.accepted for month in figures.months),
            text_share=100 * (figures.registered_by_text_share or 0),
            runs=recent_runs,
            running=next((run for run in recent_runs if run.is_running), None),
            form=form,
            channels_form=channels_form,
            may_switch=may_switch,
            may_manage=may_manage,
        )
        return TemplateResponse(request, "admin/invitations/dashboard.html", context)

    def _save_settings(self, request: HttpRequest, practice: Practice, form: forms.ModelForm, saved: str) -> bool:
        """Save one of the dashboard's settings forms, audited, and recount the figures it changes
        (who can be invited, by which channel). False when the form has errors to show."""
        if not form.is_valid():
            return False
        form.save()
        if form.changed_data:
            adoption.request_refresh(practice.pk)
            labels, values = audit.describe_changes(form, with_values=True)
            audit.record(
                practice_id=practice.pk, actor=request.user, action=AuditAction.PRACTICE_SETTINGS,
                summary=f"Changed {labels}", details=values,
            )
            self.message_user(request, saved, messages.SUCCESS)
        return True

    def refresh_view(self, request: HttpRequest, practice_id: int):
        """The "Refresh now" button (a POST): enqueue a recount of the stored figures and go back."""
        practice = self._practice(request, practice_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if adoption.request_refresh(practice.pk):
            self.message_user(request, "Recounting the figures in the background; reload in a moment.", messages.SUCCESS)
        else:
            self.message_user(request, "The figures are already being recounted; reload in a moment.", messages.INFO)
        if request.POST.get("back") == "activate" and can_manage_portal(request.user, practice.pk):
            return HttpResponseRedirect(reverse("admin:invitations_portal_activate", args=[practice.pk]))
        return HttpResponseRedirect(reverse("admin:invitations_portal_dashboard", args=[practice.pk]))

    # -- Activate Now ----------------------------------------------------------------------

    def activate_view(self, request: HttpRequest, practice_id: int):
        practice = self._practice(request, practice_id)
        if not can_manage_portal(request.user, practice.pk):
            raise PermissionDenied("Activate Now is for the practice's admins and managers.")
        running = runs.running_run(practice)
        if request.method == "POST":
            return self._start(request, practice)
        now = timezone.now()
        # Up to a few tens of thousands of inactive patients the preview is counted live (exact,
        # well under a second); above that the stored figures' preview is shown with the time it
        # was counted, since the run checks every patient again when it is planned.
        snapshot = adoption.current(practice, now=now)
        live = snapshot.preview.considered <= adoption.live_preview_max_inactive()
        # Both count with the practice's channels for bulk runs (`eligibility.bulk_plan`).
        preview = runs.preview(practice, now=now) if live else snapshot.preview
        return TemplateResponse(
            request, "admin/invitations/activate_now.html",
            self._context(
                request, f"Activate Now: {practice.name}", practice=practice, preview=preview, running=running,
                snapshot=None if live else snapshot,
                emails=preview.eligible if preview.emails is None else preview.emails, texts=preview.texts,
                texts_off=practice.bulk_channels != BulkChannels.EMAIL and not practice.text_invitations_enabled,
                reasons=[(rule, count, CHANNEL_OF_RULE[rule.channel]) for rule, count in preview.reasons],
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
            ),
        )

    def _start(self, request: HttpRequest, practice: Practice):
        dashboard_url = reverse("admin:invitations_portal_dashboard", args=[practice.pk])
        try:
            run = runs.start_run(practice=practice, now=timezone.now(), actor=request.user, plan_later=True)
        except runs.RunAlreadyRunning:
            running = runs.running_run(practice)
            self.message_user(
                request,
                "Activate Now is already running for this practice; it was not started again. "
                "Wait for the run below to finish.",
                messages.ERROR,
            )
            if running is not None:
                return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[running.pk]))
            return HttpResponseRedirect(dashboard_url)
        self.message_user(request, "Activate Now started. The figures below update as it runs.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[run.pk]))

    # -- progress --------------------------------------------------------------------------

    @staticmethod
    def progress_data(run: BulkRun) -> dict:
        """The progress page's figures (and its JSON). Texts sent and failed are there for a run
        that texts (and once the chunks count them)."""
        progress = runs.run_progress(run, now=timezone.now())
        totals = progress.totals
        processed = totals["processed"]
        if not run.is_planned:
            percent = 0
        elif not run.targeted:
            percent = 100
        else:
            percent = min(100, int(100 * processed / run.targeted)) if run.is_running else 100
        return {
            "status": run.status,
            "planned": run.is_planned,
            "finished": not run.is_running,
            "targeted": run.targeted,
            "processed": processed,
            "invited": totals["invited"],
            "sent": totals["sent"],
            "failed": totals["failed"],
            "waiting": totals["waiting"],
            "skipped": totals["skipped"],
            "skipped_at_plan": run.skipped_at_plan,
            "chunks": totals["chunks"],
            "chunks_done": totals["chunks_done"],
            "percent": percent,
            "rate": None if progress.rate is None else round(progress.rate, 1),
            "seconds_left": None if progress.seconds_left is None else round(progress.seconds_left),
            "time_left": _duration(progress.seconds_left),
            "send_problem": progress.problem,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            **_text_totals(run, totals),
        }

    def progress_view(self, request: HttpRequest, run_id: int):
        run = self._run(request, run_id)
        data = self.progress_data(run)
        reasons = [
            (eligibility.RULES_BY_CODE[code].message, count)
            for code, count in sorted(run.skip_counts.items(), key=lambda item: -item[1])
            if code in eligibility.RULES_BY_CODE and count
        ]
        return TemplateResponse(
            request, "admin/invitations/bulkrun/progress.html",
            self._context(
                request, f"{run.get_kind_display()}: {run.practice.name}", run=run, progress=data, reasons=reasons,
                json_url=reverse("admin:invitations_bulkrun_progress_json", args=[run.pk]),
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[run.practice_id]),
            ),
        )

    def progress_json_view(self, request: HttpRequest, run_id: int):
        run = self._run(request, run_id)
        return JsonResponse(self.progress_data(run))
