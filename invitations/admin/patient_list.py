"""The patient list's invitations: the status column and its filters (the portal status, and "why no
invitation": patients one eligibility rule blocks now, which the dashboard's "not eligible" figures
link to), and the Invite / Resend / Revoke actions with their confirmation pages (also used by the
patient page's buttons and the invitation list's actions)."""

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from patients.models import Patient

from invitations import eligibility, services
from invitations.admin.patient_add import channels_note
from invitations.bulk import runs
from invitations.models import Invitation
from invitations.models.bulk_runs import BulkRunKind
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


#: Rules that mean "cannot be invited"; the others describe waiting (an open or recent link). And a
#: bulk run's child with no parent or guardian on file (the dashboard's "not eligible" links to it).
REASONS = {
    **{rule.code: rule for rule in eligibility.RULES if rule.code not in {"registered", "open_invitation", "invited_recently"}},
    eligibility.CHILD_NO_REPRESENTATIVE.code: eligibility.CHILD_NO_REPRESENTATIVE,
}
#: Children too young for their own account are invited through their parents: the other rules of
#: a patient's own invitation list only the patients they would hold back (as the dashboard counts).
CHILDREN_REASONS = {"child_no_own_account", eligibility.CHILD_NO_REPRESENTATIVE.code}


class NoInviteReasonFilter(admin.SimpleListFilter):
    title = "why no invitation"
    parameter_name = "no_invite"

    def lookups(self, request, model_admin):
        return [(code, rule.message.split(":")[0].rstrip(".")) for code, rule in REASONS.items()]

    def queryset(self, request, queryset):
        rule = REASONS.get(self.value() or "")
        if rule is None:
            return queryset
        now = timezone.now()
        chosen = queryset.filter(Q(rule.blocks(now)), portal_user__isnull=True)
        return chosen if rule.code in CHILDREN_REASONS else chosen.exclude(eligibility.too_young(now))


class PatientListInvitations:
    """Mixed into the patient admin (`invitations.admin.patients`), which supplies `can_invite`,
    `can_revoke` and `max_action_rows`."""

    @admin.display(description="portal invitation", ordering="portal_status")
    def invitation_status(self, obj: Patient):
        return status_tag(obj.portal_status)

    def get_queryset(self, request):
        return with_portal_status(super().get_queryset(request), timezone.now())

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
