"""A patient's page: the invitation box (status, where the last links went and until when they
work, what stops a new one), its Send / Resend / Revoke buttons with the choice of channel, the
timeline of recent invitations, the warning when a changed address or number revoked a link, and
"Why no invite?" (`invitations.diagnostics`)."""

import zoneinfo

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from patients.models import Patient, normalise_email

from invitations import diagnostics, eligibility
from invitations.admin.patient_add import read_send_by, recipients
from invitations.models import Invitation
from invitations.patient_status import status_tag
from invitations.vocabulary import SendBy


class PatientPageInvitations:
    """Mixed into the patient admin (`invitations.admin.patients`), which supplies `can_invite`,
    `can_revoke` and the confirmations of `invitations.admin.patient_list`."""

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
        # The same reading of the rules as "Why no invite?" (diagnostics.outlook): per channel, so a
        # channel the invitation does not use (texts, while email works) is never "cannot be sent".
        reading = None if registered else diagnostics.outlook(patient, now=now)
        # A link that is out and working is the good state, not a reason: the box says when it went
        # and until when it works; reasons are listed only for what stops a new invitation.
        reasons = [] if registered else [
            r for r in reading.blocking
            if not (has_open_invitation and r.code in ("open_invitation", "invited_recently"))
        ]
        resend_reasons = [] if registered else reading.resend_blocking
        can_invite = not registered and self.can_invite(request, patient.practice_id)
        region = patient.practice.country
        for invitation in invitations:
            invitation.recipients = recipients(invitation, region)
        extra_context.update(
            portal_status_tag=status_tag(patient.portal_status),
            **self._send_by_context(patient, reading, offered=can_invite),
            latest_invitation=latest,
            latest_invitation_expired=latest is not None and latest.is_expired(now),
            recent_invitations=invitations,
            invitation_reasons=reasons,
            can_invite=can_invite,
            can_revoke=not registered and self.can_revoke(request, patient.practice_id),
            has_open_invitation=has_open_invitation,
            # Resend replaces a working link; with none out (it failed, expired or was revoked) the one
            # button is "Send portal invitation". Offered only where it would work; otherwise the
            # button says why not.
            resend_possible=can_invite and has_open_invitation and not resend_reasons,
            resend_blocked=eligibility.reasons_text(resend_reasons) if can_invite and has_open_invitation else "",
            resend_from=(latest.created_at + eligibility.RECENT_INVITATION_WINDOW)
            if any(r.code == "invited_recently" for r in resend_reasons) else None,
        )
        # Every time on the page in the practice's time zone, the form's fields included.
        with timezone.override(zoneinfo.ZoneInfo(patient.practice.time_zone)):
            response = super().change_view(request, object_id, form_url, extra_context=extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def _send_by_context(self, patient: Patient, reading, *, offered: bool) -> dict:
        """The page's "Send by" choice, where the practice sends texts: the choices, and each
        channel that cannot be used now (diagnostics.outlook: once, as information)."""
        if not offered or reading is None or not patient.practice.text_invitations_enabled:
            return {"send_by_choices": []}
        return {"send_by_choices": SendBy.choices, "channels_blocked": reading.channel_notes()}

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

    def page_urls(self):
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
        ]
