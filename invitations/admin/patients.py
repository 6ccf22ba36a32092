"""The patient admin with the portal on it: the invitation status column and filters, the invite,
resend and revoke actions and buttons with their confirmations, the patient page's portal box and
timeline, "Why no invite?", and "Send portal invitation" on the add form; where the practice sends
texts, the front desk chooses the channel of one invitation there and on the page's buttons
(`invitations.admin.patient_add`).

The patient admin itself (`patients.admin.PatientAdmin`) knows nothing of invitations: this app
extends it and registers the extended admin in its place (the app above extends the app below).
"""

import zoneinfo

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from patients import tenancy
from patients.admin import PatientAdmin
from patients.models import Patient, Practice, normalise_email

from invitations import diagnostics, eligibility, services
from invitations.bulk import runs
from invitations.admin.patient_filters import NoInviteReasonFilter
from invitations.admin.patient_add import NEEDED_BY_SEND_BY, PatientAddForm, PatientAddFormWithSendBy, channels_note, read_send_by, recipients
from invitations.models.bulk_runs import BulkRunKind
from invitations.models import Channel, Invitation, Source
from invitations.patient_status import PortalStatus, filter_by_portal_status, status_tag, with_portal_status
from invitations.vocabulary import SendBy


class PortalStatusFilter(admin.SimpleListFilter):
    title = "portal invitation status"
    parameter_name = "portal_status"

    def lookups(self, request, model_admin):
        return PortalStatus.CHOICES

    def queryset(self, request, queryset):
        if self.value():
            return filter_by_portal_status(queryset, self.value(), timezone.now())
        return queryset


class PortalPatientAdmin(PatientAdmin):
    list_display = [
        "chart_number", "last_name", "first_name", "invitation_status", "date_of_birth", "email", "mobile_number", "practice",
    ]
    list_filter = [
        PatientAdmin.list_filter[0], PortalStatusFilter, NoInviteReasonFilter, *PatientAdmin.list_filter[1:],
    ]
    actions = ["invite_selected", "resend_selected", "revoke_selected"]
    #: Bulk invitations beyond this go through Activate Now, which runs in the background.
    max_action_rows = 500

    @admin.display(description="portal invitation", ordering="portal_status")
    def invitation_status(self, obj: Patient):
        return status_tag(obj.portal_status)

    def get_queryset(self, request):
        return with_portal_status(super().get_queryset(request), timezone.now())

    def can_invite(self, request, practice_id=None) -> bool:
        if practice_id is None:
            ids = tenancy.practice_ids_for(request.user, "invitations.add_invitation")
            return ids is None or bool(ids)
        return tenancy.can(request.user, "invitations.add_invitation", practice_id)

    def can_revoke(self, request, practice_id=None) -> bool:
        if practice_id is None:
            ids = tenancy.practice_ids_for(request.user, "invitations.change_invitation")
            return ids is None or bool(ids)
        return tenancy.can(request.user, "invitations.change_invitation", practice_id)

    def texts_offered(self, request) -> bool:
        """Whether any practice the user may invite for sends invitation texts (asked once per request)."""
        if not hasattr(request, "_portal_texts_offered"):
            ids = tenancy.practice_ids_for(request.user, "invitations.add_invitation")
            practices = Practice.objects.all() if ids is None else Practice.objects.filter(pk__in=ids)
            request._portal_texts_offered = practices.filter(text_invitations_enabled=True).exists()
        return request._portal_texts_offered

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None and self.can_invite(request):
            kwargs["form"] = PatientAddFormWithSendBy if self.texts_offered(request) else PatientAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None and self.can_invite(request):
            # First on the page: ticking it marks what the invitation needs (change_form.html).
            fields = ["send_invitation", "send_by"] if self.texts_offered(request) else ["send_invitation"]
            fieldsets = [("Patient portal", {"fields": fields}), *fieldsets]
        return fieldsets

    def add_view(self, request, form_url="", extra_context=None):
        needed = NEEDED_BY_SEND_BY if self.texts_offered(request) else {SendBy.AUTO: NEEDED_BY_SEND_BY[SendBy.AUTO]}
        extra_context = {**(extra_context or {}), "needed_for_invitation": needed}
        return super().add_view(request, form_url, extra_context=extra_context)

    def save_model(self, request, obj, form, change):
        # Open links to another address or number are revoked on save (invitations.signals); say so here.
        open_links = Invitation.objects.open().filter(patient_id=obj.pk)
        old_address = change and "email" in form.changed_data and (
            open_links.filter(by_email=True).exclude(email=normalise_email(obj.email)).exists()
        )
        old_number = change and "mobile_phone" in form.changed_data and (
            open_links.filter(by_text=True).exclude(text_to=obj.mobile_phone).exists()
        )
        super().save_model(request, obj, form, change)
        what = {
            (True, False): "The email address changed, so the invitation sent to the old address",
            (False, True): "The mobile number changed, so the invitation texted to the old number",
            (True, True): "The email address and the mobile number changed, so the invitation sent to the old ones",
        }.get((bool(old_address), bool(old_number)))
        if what:
            self.message_user(
                request,
                f"{what} was revoked and can no longer be used. Use Invite to send {obj.first_name or 'the patient'} a new link.",
                messages.WARNING,
            )
        if not change and form.cleaned_data.get("send_invitation"):
            self._invite_new_patient(request, obj, send_by=form.cleaned_data.get("send_by") or SendBy.AUTO)

    def _invite_new_patient(self, request, patient: Patient, *, send_by: str) -> None:
        outcome = services.invite_many(
            [patient], now=timezone.now(), actor=request.user, source=Source.NEW_PATIENT, send_by=send_by,
        )
        if outcome.done:
            invitation = patient.invitations.order_by("-pk").first()
            self.message_user(
                request, f"A portal invitation is on its way to {recipients(invitation, patient.practice.country)}.",
                messages.SUCCESS,
            )
        else:
            self.message_user(
                request, f"The patient was saved, but no portal invitation was sent: {outcome.skipped[0][1]}", messages.WARNING,
            )


    def _patients_for_action(self, request, queryset) -> list[Patient] | None:
        count = queryset.count()
        if count > self.max_action_rows:
            self.message_user(
                request,
                f"{count:,} patients selected; this action handles up to {self.max_action_rows}. "
                "Filter the list, or use Activate Now for the whole practice.",
                messages.ERROR,
            )
            return None
        return list(queryset.select_related("practice"))

    def _report(self, request, *, done: int, verb: str, skipped: list[tuple[Patient, str]]) -> None:
        self.message_user(request, f"{verb} {done} patient{'s' if done != 1 else ''}.", messages.SUCCESS if done else messages.INFO)
        if skipped:
            listed = "; ".join(f"{patient}: {why}" for patient, why in skipped[:20])
            more = f"; and {len(skipped) - 20} more" if len(skipped) > 20 else ""
            self.message_user(request, f"Skipped {len(skipped)}: {listed}{more}.", messages.WARNING)

    def _invite(self, request, patients, *, resend: bool, send_by: str = SendBy.AUTO) -> tuple[int, list[tuple[Patient, str]]]:
        outcome = services.invite_many(patients, now=timezone.now(), actor=request.user, resend=resend, send_by=send_by)
        return len(outcome.done), outcome.skipped

    def _revoke(self, request, patients) -> tuple[int, list[tuple[Patient, str]]]:
        outcome = services.revoke_many(patients, now=timezone.now(), actor=request.user)
        return len(outcome.done), outcome.skipped

    def has_invite_permission(self, request) -> bool:
        return self.can_invite(request)

    def has_revoke_permission(self, request) -> bool:
        return self.can_revoke(request)

    @admin.action(description="Invite selected patients to the portal", permissions=["invite"])
    def invite_selected(self, request, queryset):
        patients = self._patients_for_action(request, queryset)
        if patients is not None:
            done, skipped = self._invite(request, patients, resend=False)
            self._report(request, done=done, verb="Invited", skipped=skipped)

    @admin.action(description="Resend portal invitation (new link) to selected patients", permissions=["invite"])
    def resend_selected(self, request, queryset):
        patients = self._patients_for_action(request, queryset)
        if patients is None:
            return None
        if request.POST.get("confirm") != "yes":
            return self._resend_confirmation(request, patients, via_action=True)
        if len(patients) > 1:
            return self._resend_in_the_background(request, patients)
        done, skipped = self._invite(request, patients, resend=True)
        self._report(request, done=done, verb="Sent a new link to", skipped=skipped)
        return None

    def _resend_in_the_background(self, request, patients):
        """New links for several patients: one resend run per practice, sent by a worker through
        the email service's rate like Activate Now, with its own progress page; the request
        returns at once."""
        allowed = [p for p in patients if self.can_invite(request, p.practice_id)]
        refused = [(p, "your role at this practice does not allow invitations.") for p in patients if p not in allowed]
        by_practice: dict[int, list[Patient]] = {}
        for patient in allowed:
            by_practice.setdefault(patient.practice_id, []).append(patient)
        started = []
        for practice_id, chosen in by_practice.items():
            run = runs.start_run(
                practice=chosen[0].practice, now=timezone.now(), kind=BulkRunKind.RESEND, actor=request.user,
                plan_later=True, patient_ids=[p.pk for p in chosen],
            )
            started.append(run)
        if refused:
            self._report(request, done=0, verb="Sent a new link to", skipped=refused)
        if not started:
            return None
        self.message_user(
            request,
            f"Sending new links to {len(allowed)} selected patient{pluralize(len(allowed))} in the background; "
            "anyone who can no longer get one is listed with the reason when the run is planned.",
            messages.SUCCESS,
        )
        if len(started) == 1:
            return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[started[0].pk]))
        return HttpResponseRedirect(reverse("admin:invitations_bulkrun_changelist"))

    @admin.action(description="Revoke open invitations of selected patients", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        patients = self._patients_for_action(request, queryset)
        if patients is None:
            return None
        if request.POST.get("confirm") != "yes":
            return self._revoke_confirmation(request, patients, via_action=True)
        done, skipped = self._revoke(request, patients)
        self._report(request, done=done, verb="Revoked the invitation of", skipped=skipped)
        return None

    def _revoke_confirmation(self, request, patients, *, via_action: bool, object_id=None):
        """Revoking is destructive (the patient's link stops working): say whose, then ask."""
        now = timezone.now()
        open_links = {
            i.patient_id: i for i in Invitation.objects.usable(now).filter(patient__in=patients).only("patient_id", "email", "sent_at", "expires_at")
        }
        will_revoke = [(p, open_links[p.pk]) for p in patients if p.pk in open_links and self.can_revoke(request, p.practice_id)]
        will_skip = [
            (p, "your role at this practice does not allow revoking." if not self.can_revoke(request, p.practice_id) else "no working link to revoke.")
            for p in patients if not any(p is chosen for chosen, _ in will_revoke)
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Revoke portal links?",
            "will_revoke": will_revoke,
            "will_skip": will_skip,
            "via_action": via_action,
            "selected_ids": [p.pk for p in patients],
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "object_id": object_id,
        }
        return TemplateResponse(request, "admin/patients/patient/revoke_confirmation.html", context)

    def _resend_confirmation(self, request, patients, *, via_action: bool, object_id=None, send_by: str = SendBy.AUTO):
        now = timezone.now()
        will_send, will_skip, how = [], [], []
        for patient in patients:
            if not self.can_invite(request, patient.practice_id):
                will_skip.append((patient, "Your role at this practice does not allow invitations."))
                continue
            decision = eligibility.channels_for(patient, now=now, for_resend=True, plan=eligibility.PLAN_OF_SEND_BY[send_by])
            if decision.reasons:
                will_skip.append((patient, eligibility.reasons_text(decision.reasons)))
            else:
                will_send.append(patient)
                how.append((patient, channels_note(patient, decision.channels)))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Resend portal invitations?",
            "will_send": will_send,
            "will_send_by": how,
            "send_by": send_by,
            "will_skip": will_skip,
            "via_action": via_action,
            "selected_ids": [p.pk for p in patients],
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "object_id": object_id,
        }
        return TemplateResponse(request, "admin/patients/patient/resend_confirmation.html", context)

    def invitation_view(self, request: HttpRequest, object_id: str, operation: str):
        return require_POST(self._invitation_view)(request, object_id, operation)

    def _invitation_view(self, request: HttpRequest, object_id: str, operation: str):
        patient = self.get_object_or_404_scoped(request, object_id)  # another practice's id: 404
        if operation not in ("invite", "resend", "revoke"):
            raise PermissionDenied("Unknown invitation action.")
        allowed = self.can_revoke(request, patient.practice_id) if operation == "revoke" else self.can_invite(request, patient.practice_id)
        if not allowed:
            raise PermissionDenied("Your role at this practice does not allow this.")
        change_url = reverse("admin:patients_patient_change", args=[patient.pk])
        send_by = read_send_by(request.POST.get("send_by"))
        if send_by is None:
            self.message_user(request, "Choose how to send the invitation: email, text message or both.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        if operation == "resend" and request.POST.get("confirm") != "yes":
            return self._resend_confirmation(request, [patient], via_action=False, object_id=patient.pk, send_by=send_by)
        if operation == "revoke" and request.POST.get("confirm") != "yes":
            return self._revoke_confirmation(request, [patient], via_action=False, object_id=patient.pk)
        if operation == "revoke":
            done, skipped = self._revoke(request, [patient])
            self._report(request, done=done, verb="Revoked the invitation of", skipped=skipped)
        else:
            done, skipped = self._invite(request, [patient], resend=operation == "resend", send_by=send_by)
            verb = "Sent a new link to" if operation == "resend" else "Invited"
            self._report(request, done=done, verb=verb, skipped=skipped)
        return HttpResponseRedirect(change_url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        patient = self.get_object(request, object_id)
        if patient is None:
            return super().change_view(request, object_id, form_url, extra_context=extra_context)
        now = timezone.now()
        invitations = list(
            Invitation.objects.filter(patient=patient).select_related("created_by").prefetch_related("events__actor")[:5]
        )
        latest = invitations[0] if invitations else None
        has_open_invitation = latest is not None and latest.is_usable(now)
        registered = patient.has_portal_account
        # A link that is out and working is the good state, not a reason: the box says when it went
        # and until when it works; reasons are listed only for what stops a new invitation.
        reasons = [] if registered else [
            r for r in eligibility.reasons_for(patient, now=now)
            if not (has_open_invitation and r.code in ("open_invitation", "invited_recently"))
        ]
        resend_reasons = [] if registered else eligibility.reasons_for(patient, now=now, for_resend=True)
        can_invite = not registered and self.can_invite(request, patient.practice_id)
        region = patient.practice.country
        for invitation in invitations:
            invitation.recipients = recipients(invitation, region)
        extra_context.update(
            portal_status_tag=status_tag(patient.portal_status),
            **self._send_by_context(patient, now=now, offered=can_invite),
            latest_invitation=latest,
            latest_invitation_expired=latest is not None and latest.is_expired(now),
            recent_invitations=invitations,
            invitation_reasons=reasons,
            can_invite=can_invite,
            can_revoke=not registered and self.can_revoke(request, patient.practice_id),
            has_open_invitation=has_open_invitation,
            # Offered only where it would work; otherwise the button says why not.
            resend_possible=can_invite and (has_open_invitation or latest is not None) and not resend_reasons,
            resend_blocked=eligibility.reasons_text(resend_reasons) if can_invite and latest is not None else "",
            resend_from=(latest.created_at + eligibility.RECENT_INVITATION_WINDOW)
            if any(r.code == "invited_recently" for r in resend_reasons) else None,
        )
        # Every time on the page in the practice's time zone, the form's fields included.
        with timezone.override(zoneinfo.ZoneInfo(patient.practice.time_zone)):
            response = super().change_view(request, object_id, form_url, extra_context=extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def _send_by_context(self, patient: Patient, *, now, offered: bool) -> dict:
        """The page's "Send by" choice, where the practice sends texts: the choices, and what stops
        each channel now (one query: every channel's reasons under "both")."""
        if not offered or not patient.practice.text_invitations_enabled:
            return {"send_by_choices": []}
        reasons = eligibility.reasons_for(patient, now=now, for_resend=True, plan=eligibility.Plan.BOTH)
        blocked = [
            (Channel(channel).label, eligibility.reasons_text(
                [r for r in reasons if eligibility.RULES_BY_CODE[r.code].channel == channel]
            ))
            for channel in (Channel.EMAIL, Channel.TEXT)
        ]
        return {
            "send_by_choices": SendBy.choices,
            "channels_blocked": [(label, why) for label, why in blocked if why],
        }

    def diagnostics_view(self, request: HttpRequest, object_id: str):
        """'Why no invite?': every check for one patient, with fixes (any staff who can see the patient)."""
        patient = self.get_object(request, object_id)
        if not self.has_view_permission(request, patient):
            raise PermissionDenied
        sections = diagnostics.diagnose(patient, now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": patient,
            "title": f"Why no invite? {patient}",
            "sections": sections,
            "failing": sum(section.failing for section in sections),
        }
        return TemplateResponse(request, "admin/patients/patient/diagnostics.html", context)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/diagnostics/",
                self.admin_site.admin_view(self.diagnostics_view),
                name="%s_%s_diagnostics" % info,
            ),
            path(
                "<path:object_id>/invitation/<str:operation>/",
                self.admin_site.admin_view(self.invitation_view),
                name="%s_%s_invitation" % info,
            ),
        ] + super().get_urls()


admin.site.unregister(Patient)
admin.site.register(Patient, PortalPatientAdmin)
