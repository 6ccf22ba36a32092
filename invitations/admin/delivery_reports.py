"""Delivery reports from the email service, as received (read-only; stored by
`invitations.models.delivery_reports`)."""

from django.contrib import admin

from patients.admin_scoping import PracticeScopedAdmin

from invitations.models.delivery_reports import DeliveryReport


@admin.register(DeliveryReport)
class DeliveryReportAdmin(PracticeScopedAdmin):
    """What the email service reported, as received (read-only)."""

    practice_lookup = "invitation__practice"
    list_display = ["received_at", "provider", "event_type", "outcome", "invitation"]
    list_filter = ["event_type", "provider"]
    list_select_related = ["invitation"]
    search_fields = ["=message_id", "=invitation__public_id"]
    readonly_fields = ["provider", "event_id", "event_type", "message_id", "invitation", "occurred_at", "received_at", "outcome"]
    fields = readonly_fields
    show_full_result_count = False

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
