from django.contrib import admin

from patients.admin.scoping import PracticeScopedAdmin, ReadOnlyAdmin
from patients.audit import AuditEntry
from patients.timezones import PracticeLocalTimes


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin, PracticeLocalTimes, PracticeScopedAdmin):
    """Read-only: the trail is written by the actions themselves."""

    list_display = ["created_at", "action", "summary", "actor", "patient", "practice"]
    list_filter = ["practice", "action", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["=patient__chart_number", "actor__username"]
    search_help_text = "Search by a patient's chart number or a staff username."
    list_select_related = ["actor", "patient", "practice"]
    readonly_fields = ["created_at", "practice", "action", "summary", "actor", "patient", "details"]
    fields = readonly_fields
    date_hierarchy = "created_at"
    show_full_result_count = False



