from typing import Optional

from django import forms
from django.contrib import admin
from django.db.models import BooleanField, Case, Value, When
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.phones import display_phone
from patients import audit, tenancy
from patients.admin_scoping import PracticeScopedAdmin, PracticeScopedForm
from patients.models import Patient
from patients.paging import CappedCountPaginator

from . import template_html, template_service
from .models import OPEN_STATUSES, Invitation, InvitationEvent, InvitationTemplate, Status, run_out
from .portal_status import PortalStatus, status_tag
from .tracking import DeliveryReport
from .vocabulary import last_digits

STATUS_TAGS = {
    Status.PENDING: PortalStatus.PENDING,
    Status.SENT: PortalStatus.SENT,
    Status.EXPIRED: PortalStatus.EXPIRED,
    Status.FAILED: PortalStatus.FAILED,
    Status.REVOKED: PortalStatus.REVOKED,
    Status.ACCEPTED: PortalStatus.ACTIVE,
}


#: How an invitation went, by (by_email, by_text).
CHANNEL_LABELS = {(True, False): "Email", (False, True): "Text", (True, True): "Email and text"}


class ChannelFilter(admin.SimpleListFilter):
    title = "sent by"
    parameter_name = "channel"
    CONDITIONS = {
        "email": {"by_email": True, "by_text": False},
        "text": {"by_email": False, "by_text": True},
        "both": {"by_email": True, "by_text": True},
    }

    def lookups(self, request, model_admin):
        return [("email", "Email"), ("text", "Text"), ("both", "Email and text")]

    def queryset(self, request, queryset):
        condition = self.CONDITIONS.get(self.value() or "")
        return queryset.filter(**condition) if condition else queryset


class InvitationEventInline(admin.TabularInline):
    model = InvitationEvent
    fields = ["at", "kind", "actor", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]
    verbose_name = "timeline entry"
    verbose_name_plural = "timeline"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


@admin.register(Invitation)
class InvitationAdmin(PracticeScopedAdmin):
    list_display = [
        "created_at", "patient", "email", "channels", "status_tag", "text", "problem", "source", "accepted_via",
        "expires_at", "practice",
    ]
    list_filter = ["practice", "status", ChannelFilter, "text_status", "revoke_reason", "source"]
    search_fields = ["^patient__last_name", "=patient__chart_number", "^email", "=public_id"]
    list_select_related = ["patient", "practice"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    # Newest first by id (the order they were made in): the primary key serves it for any
    # practice or none; "-created_at" had no index without a practice and sorted 1.5M rows (3 s).
    ordering = ["-id"]
    inlines = [InvitationEventInline]
    actions = ["resend_to_patients", "revoke_selected"]
    fieldsets = [
        (None, {"fields": [
            "practice", "patient", "channels", "status", "revoke_reason", "failure_reason", "source", "created_by",
            "created_at", "expires_at", "accepted_at", "accepted_via", "ended_at", "failed_attempts", "public_id",
        ]}),
        ("Email", {"fields": ["email", "sent_at", "provider_message_id"]}),
        ("Text message", {"fields": ["text_number", "text_status", "text_sent_at", "text_attempts", "text_sid", "text_error"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    def get_fieldsets(self, request, obj=None):
        # Only the channels the invitation uses.
        unused = {"Email": obj is not None and not obj.by_email, "Text message": obj is None or not obj.by_text}
        return [(name, options) for name, options in super().get_fieldsets(request, obj) if not unused.get(name)]

    def get_queryset(self, request):
        # One clock reading per page: links that ran out before the sweep marked them.
        return super().get_queryset(request).annotate(
            run_out=Case(
                When(run_out(timezone.now()), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )

    @admin.display(description="status", ordering="status")
    def status_tag(self, obj: Invitation):
        if obj.status == Status.EXPIRED or getattr(obj, "run_out", False):
            return status_tag(PortalStatus.EXPIRED)
        return status_tag(STATUS_TAGS[obj.status])

    @admin.display(description="sent by")
    def channels(self, obj: Invitation) -> str:
        return CHANNEL_LABELS.get((obj.by_email, obj.by_text), "")

    @admin.display(description="text message")
    def text(self, obj: Invitation) -> str:
        """The text's state and the number's last digits only (lists are read over shoulders)."""
        if not obj.by_text:
            return ""
        return f"{obj.get_text_status_display()} ({last_digits(obj.text_to)})"

    @admin.display(description="number texted")
    def text_number(self, obj: Invitation) -> str:
        return display_phone(obj.text_to, obj.practice.country) if obj.text_to else ""

    @admin.display(description="reason")
    def problem(self, obj: Invitation) -> str:
        if obj.status == Status.FAILED:
            return obj.failure_reason
        if obj.status == Status.REVOKED:
            return obj.get_revoke_reason_display()
        if obj.text_error:  # the text failed while the email still reaches the patient
            return f"Text: {obj.text_error}"
        return ""

    @admin.action(description="Resend: new links for these invitations' patients…", permissions=["change"])
    def resend_to_patients(self, request, queryset):
        """The failed-invitations list's Resend: the patient list's confirmation page, for these patients."""
        patient_admin = self.admin_site.get_model_admin(Patient)  # the patient list's own flow (Django's public accessor)
        patients = patient_admin.get_queryset(request).filter(pk__in=queryset.values("patient_id"))
        return patient_admin.resend_selected(request, patients)

    def has_add_permission(self, request, *args):
        return False  # invitations are created from the patient list and page

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser  # the timeline is the audit trail

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke_selected(self, request, queryset):
        """The same revoke as the patient list's (role check per practice, audit trail)."""
        patient_admin = self.admin_site.get_model_admin(Patient)  # the patient list's own flow (Django's public accessor)
        open_ones = queryset.filter(status__in=OPEN_STATUSES)
        patients = patient_admin.get_queryset(request).filter(pk__in=open_ones.values("patient_id"))
        return patient_admin.revoke_selected(request, patients)

class InvitationTemplateForm(PracticeScopedForm):
    class Meta:
        model = InvitationTemplate
        fields = ["practice", "subject", "html_body"]
        widgets = {"html_body": forms.Textarea(attrs={"rows": 20, "cols": 100})}


@admin.register(InvitationTemplate)
class InvitationTemplateAdmin(PracticeScopedAdmin):
    """A basic editor; the preview and richer editing live with the practice settings work."""

    form = InvitationTemplateForm
    list_display = ["practice", "subject", "updated_at", "updated_by"]
    list_select_related = ["practice", "updated_by"]
    readonly_fields = ["updated_at", "updated_by", "snippets"]
    fields = ["practice", "subject", "html_body", "snippets", "updated_at", "updated_by"]

    def editable_practice_ids(self, request) -> Optional[set[int]]:
        """The wording patients receive is the practice admins' and managers' call (roles.MANAGING_ROLES)."""
        ids = self.scoped_practice_ids(request, "change")
        if ids is None:
            return None
        return {pk for pk in ids if tenancy.manages(request.user, pk)}

    def _may_edit(self, request, obj=None) -> bool:
        ids = self.editable_practice_ids(request)
        if ids is None:
            return True
        return obj.practice_id in ids if obj is not None and obj.pk else bool(ids)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_edit(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        ids = self.editable_practice_ids(request)
        if db_field.name == "practice" and ids is not None:
            field.queryset = field.queryset.filter(pk__in=ids)
        return field

    @admin.display(description="available snippets")
    def snippets(self, obj=None):
        items = format_html_join("", "<li><code>{}</code>: {}</li>", template_html.SNIPPETS.items())
        return format_html("<ul>{}</ul><p>Write plain HTML; scripts and unsafe markup are removed on save.</p>", items)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("subject", template_html.DEFAULT_SUBJECT)
        initial.setdefault("html_body", template_html.DEFAULT_HTML_BODY)
        return initial

    def save_model(self, request, obj, form, change):
        labels, _ = audit.describe_changes(form, with_values=False)
        template_service.save_template(obj, actor=request.user, changed=[labels] if labels else [])


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


# The portal access dashboard, Activate Now, bulk runs and the template editor.
from . import admin_portal  # noqa: E402,F401
# The patient admin with the portal on it (registered in place of patients.admin.PatientAdmin).
from . import admin_patients  # noqa: E402,F401
