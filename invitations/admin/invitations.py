"""The invitations list (Admin → Portal invitations → Invitations): every invitation with its
channels, recipient, status and reason, its timeline inline, and Resend / Revoke handed to the
patient list's own flow (`invitations.admin.patient_list`); and the delivery reports the email
service sent about them (read-only)."""

from django.contrib import admin
from django.db.models import BooleanField, Case, Value, When
from django.utils import timezone

from core.phones import display_phone
from patients.admin.scoping import PracticeScopedAdmin, ReadOnlyAdmin, TimelineInline
from patients.models import Patient
from patients.admin.paging import CappedCountPaginator
from patients.timezones import PracticeLocalTimes

from invitations.models.delivery_reports import DeliveryReport
from invitations.models import OPEN_STATUSES, Invitation, InvitationEvent, Status, run_out
from invitations.patient_status import PortalStatus, status_tag
from invitations.vocabulary import last_digits

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


class InvitationEventInline(TimelineInline):
    model = InvitationEvent
    fields = ["at", "kind", "actor", "detail"]


@admin.register(Invitation)
class InvitationAdmin(PracticeLocalTimes, PracticeScopedAdmin):
    list_display = [
        "created_at", "patient", "recipient", "email", "channels", "status_tag", "text", "problem", "source", "accepted_via",
        "expires_at", "practice",
    ]
    list_filter = ["practice", "status", ChannelFilter, "text_status", "revoke_reason", "source"]
    search_fields = ["^patient__last_name", "=patient__chart_number", "^email", "=public_id"]
    list_select_related = ["patient", "practice", "access__representative"]
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

    @admin.display(description="to")
    def recipient(self, obj: Invitation) -> str:
        """The patient, or the representative invited to act for them."""
        if obj.access_id is None:
            return "The patient"
        return f"{obj.access.representative} ({obj.access.get_relationship_display().lower()})"

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


@admin.register(DeliveryReport)
class DeliveryReportAdmin(ReadOnlyAdmin, PracticeLocalTimes, PracticeScopedAdmin):
    """What the email service reported, as received (read-only)."""

    practice_lookup = "invitation__practice"
    list_display = ["received_at", "provider", "event_type", "outcome", "invitation"]
    list_filter = ["event_type", "provider"]
    list_select_related = ["invitation"]
    search_fields = ["=message_id", "=invitation__public_id"]
    readonly_fields = ["provider", "event_id", "event_type", "message_id", "invitation", "occurred_at", "received_at", "outcome"]
    fields = readonly_fields
    show_full_result_count = False



