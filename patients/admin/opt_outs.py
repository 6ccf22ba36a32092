"""The practice's opt-out lists in the admin: addresses it must not email and mobile numbers it
must not text. An entry records what happened (who added it, why); removing it is the audited
way to lift it (managers and practice admins)."""

from django.contrib import admin

from core.phones import InvalidPhoneNumber, display_phone, normalise_phone

from patients import audit
from patients.admin.scoping import PracticeScopedAdmin
from patients.audit import AuditAction
from patients.models import EmailOptOut, SmsOptOut
from patients.timezones import PracticeLocalTimes


class OptOutAdmin(PracticeLocalTimes, PracticeScopedAdmin):
    """What both lists share: who added an entry and why, read-only once made, and every entry
    added or removed written to the audit trail."""

    #: The entry's address or number field, and how the audit trail names the list.
    entry_field = "email"
    added_to = removed_from = ""
    list_filter = ["practice", "reason"]
    list_select_related = ["practice", "created_by"]
    readonly_fields = ["created_at", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        # An entry records what happened; changing its address or number would quietly lift an
        # opt-out. Removing it (managers and practice admins) is the audited way.
        fields = super().get_readonly_fields(request, obj)
        return [*fields, self.entry_field, "reason"] if obj is not None else fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if not change:
            audit.record(
                practice_id=obj.practice_id, actor=request.user, action=AuditAction.OPT_OUT_ADDED,
                summary=f"Added {getattr(obj, self.entry_field)}{self.added_to} ({obj.get_reason_display()})",
            )

    def delete_model(self, request, obj):
        self._audit_removed(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        self._audit_removed(request, list(queryset))
        super().delete_queryset(request, queryset)

    def _audit_removed(self, request, entries) -> None:
        audit.record_many(
            actor=request.user,
            action=AuditAction.OPT_OUT_REMOVED,
            rows=[(e.practice_id, None, f"Removed {getattr(e, self.entry_field)}{self.removed_from}") for e in entries],
        )


@admin.register(EmailOptOut)
class EmailOptOutAdmin(OptOutAdmin):
    entry_field = "email"
    list_display = ["email", "practice", "reason", "created_at", "created_by"]
    search_fields = ["=email"]
    fields = ["practice", "email", "reason", "created_at", "created_by"]


@admin.register(SmsOptOut)
class SmsOptOutAdmin(OptOutAdmin):
    """Numbers the practice must not text: a patient's STOP reply adds one at once, START removes
    it; staff add one when a patient asks in person. Numbers typed in local form are read as the
    practice's country's (`SmsOptOut.clean_fields`), in the form and in the search box alike."""

    entry_field = "phone"
    added_to, removed_from = " to the text opt-out list", " from the text opt-out list"
    list_display = ["number", "practice", "reason", "created_at", "created_by"]
    search_fields = ["=phone"]
    search_help_text = "Type the whole mobile number, as you would dial it or with + and the country code."
    fields = ["practice", "phone", "reason", "created_at", "created_by"]

    @admin.display(description="mobile number", ordering="phone")
    def number(self, obj: SmsOptOut) -> str:
        return display_phone(obj.phone, obj.practice.country)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "phone":
            field.help_text = (
                "Type it as you would dial it, for example (617) 555-0123; numbers without a country "
                "code are read as the practice's country's. It is kept in international form (+1617...)."
            )
        return field

    def get_search_results(self, request, queryset, search_term):
        """A number typed the local way finds its entry: the term is read in the country of each
        of the user's practices (numbers are stored in international form)."""
        term = search_term.strip()
        if not term:
            return super().get_search_results(request, queryset, search_term)
        numbers = {term}
        for country in set(self.scoped_practices(request).values_list("country", flat=True).distinct()) or {"US"}:
            try:
                numbers.add(normalise_phone(term, country))
            except InvalidPhoneNumber:
                continue
        return queryset.filter(phone__in=numbers), False
