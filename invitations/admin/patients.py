"""The patient admin with invitations on it, put together from the page families that serve it:
the list (`patient_list`: status column, filters, Invite / Resend / Revoke), a patient's page
(`patient_page`: the invitation box and its buttons, "Why no invite?") and the add form
(`patient_add`: "Send portal invitation") and its representatives (`representatives`). The permission
checks they share are here.

The patient admin itself (`patients.admin.patients.PatientAdmin`) knows nothing of invitations: this app
extends it and registers the extended admin in its place (the app above extends the app below).
"""

from django.contrib import admin

from patients import tenancy
from patients.admin.patients import PatientAdmin
from patients.models import Patient

from invitations.admin.patient_add import AddAndInvite
from invitations.admin.patient_list import NoInviteReasonFilter, PatientListInvitations, PortalStatusFilter
from invitations.admin.patient_page import PatientPageInvitations
from invitations.admin.representatives import PatientRepresentatives


class PatientWithInvitationsAdmin(
    AddAndInvite, PatientRepresentatives, PatientPageInvitations, PatientListInvitations, PatientAdmin,
):
    list_display = ["chart_number", "name", "invitation_status", "date_of_birth", "contact", "language", "practice"]
    list_filter = [
        PatientAdmin.list_filter[0], PortalStatusFilter, NoInviteReasonFilter, *PatientAdmin.list_filter[1:],
    ]
    actions = ["invite_selected", "resend_selected", "revoke_selected"]
    #: Bulk invitations beyond this go through Activate Now, which runs in the background.
    max_action_rows = 500

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

    def get_urls(self):
        return self.page_urls() + self.representative_urls() + super().get_urls()


admin.site.unregister(Patient)
admin.site.register(Patient, PatientWithInvitationsAdmin)
