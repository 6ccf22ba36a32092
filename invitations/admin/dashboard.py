"""The portal access dashboard of one practice (everyone on its team sees it): the adoption
figures and funnel chart (`invitations.adoption`), the links from each figure to the patients it
counts, the portal switches (the practice's admins) and the invitation channels (its admins and
managers), "Refresh now", and the list of the user's practices' dashboards."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from patients import audit, tenancy
from patients.audit import AuditAction
from patients.models import Practice

from invitations import adoption
from invitations.models.bulk_runs import BulkRun
from invitations.admin.permissions import can_change_switches, can_manage_portal


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


class DashboardViews:
    """The dashboard's pages, served by `invitations.admin.bulk_runs.BulkRunAdmin` (which supplies
    `_practice` and `_context`)."""

    def _patient_list_url(self, request: HttpRequest, practice: Practice, **params) -> str:
        ids = tenancy.practice_ids_for(request.user, "patients.view_patient")
        if ids is None or len(ids) > 1:
            params = {"practice__id__exact": practice.pk, **params}
        return reverse("admin:patients_patient_changelist") + "?" + urlencode(params)

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
                (adoption.DASHBOARD_REASONS[code], count, self._patient_list_url(request, practice, no_invite=code))
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
