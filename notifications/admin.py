"""Admin for payment-plan applications, alert deliveries and each member's "My notification
preferences" page; lender webhook settings are registered here, their admin is in `admin_lender`.
Every ModelAdmin is tenant-scoped through PracticeScopedAdmin; the preferences page scopes with
patients.tenancy."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from patients import tenancy
from patients.admin.scoping import PracticeScopedAdmin, PracticeScopedForm, ReadOnlyAdmin, TimelineInline
from patients.models import Membership, Practice
from patients.timezones import PracticeLocalTimes

from . import services
from .admin_lender import PracticeLenderSettingsAdmin
from .models import (
    AlertType,
    ApplicationStatus,
    DeliveryMode,
    LenderEvent,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
    PaymentPlanApplication,
    PracticeLenderSettings,
)

# -- applications ------------------------------------------------------------------------------

STEP_FIELDS = ["started_at", "pre_qualified_at", "approved_at", "declined_at", "activated_at"]


class ApplicationStatusForm(PracticeScopedForm):
    """The application's fields are read-only; staff may record a status change by hand."""

    record_status = forms.ChoiceField(
        label="Record a status change",
        required=False,
        choices=[("", "(no change)")] + list(ApplicationStatus.choices),
        help_text="For example when the patient tells you the plan is activated before the lender does. "
        "The same alerts go out as for a lender event; a status never moves back.",
    )
    record_occurred_at = forms.SplitDateTimeField(
        label="It happened at", required=False, widget=AdminSplitDateTime
    )

    class Meta:
        model = PaymentPlanApplication
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.fields["record_occurred_at"].initial = timezone.now()
        if self.instance.pk:
            # Only forward moves are offered (the service refuses the others anyway).
            field = self.fields["record_status"]
            field.choices = [("", "(no change)")] + [
                (value, label) for value, label in ApplicationStatus.choices if self.instance.can_move_to(value)
            ]
            field.error_messages["invalid_choice"] = (
                f"The application is already {self.instance.get_status_display().lower()}; "
                "a status can only move forward."
            )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("record_status"):
            return cleaned
        occurred_at = cleaned.get("record_occurred_at")
        if occurred_at is None:
            self.add_error("record_occurred_at", "Enter when the change happened.")
        elif occurred_at > timezone.now():
            self.add_error("record_occurred_at", "The time cannot be in the future.")
        return cleaned


class LenderEventInline(TimelineInline):
    model = LenderEvent
    fields = ["occurred_at", "event_type", "source", "actor", "outcome", "event_id", "received_at"]
    verbose_name_plural = "timeline (lender events and changes recorded by staff)"
    ordering = ["occurred_at", "id"]


@admin.register(PaymentPlanApplication)
class PaymentPlanApplicationAdmin(PracticeLocalTimes, PracticeScopedAdmin):
    form = ApplicationStatusForm
    list_display = ["lender_application_id", "patient", "practice", "status", *STEP_FIELDS]
    list_display_links = ["lender_application_id", "patient"]
    list_filter = ["practice", "status"]
    search_fields = ["=lender_application_id", "=patient__chart_number", "^patient__last_name"]
    search_help_text = "Search by the lender's application id, the patient's chart number or last name."
    list_select_related = ["patient", "practice"]
    list_per_page = 50
    show_full_result_count = False
    inlines = [LenderEventInline]
    readonly_fields = ["practice", "patient", "lender_application_id", "status", *STEP_FIELDS, "alerts", "created_at"]
    fieldsets = [
        (None, {"fields": ["practice", "patient", "lender_application_id", "status"]}),
        ("Steps", {"fields": STEP_FIELDS}),
        ("Alerts", {"fields": ["alerts"]}),
        ("Record a status change", {"fields": ["record_status", "record_occurred_at"]}),
    ]

    def has_add_permission(self, request, *args):
        # Applications come from the lender; staff record changes on existing ones.
        return False

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            fieldsets = [fs for fs in fieldsets if "record_status" not in fs[1]["fields"]]
        return fieldsets

    @admin.display(description="alerts")
    def alerts(self, obj: PaymentPlanApplication) -> str:
        url = reverse("admin:notifications_notificationdelivery_changelist")
        return format_html('<a href="{}?application__id__exact={}">Alert emails for this application</a>', url, obj.pk)

    def save_model(self, request, obj, form, change):
        status = form.cleaned_data.get("record_status")
        if not status:
            return
        if not tenancy.can(request.user, "notifications.change_paymentplanapplication", obj.practice_id):
            raise Http404("No such record in your practices.")
        try:
            result = services.record_status_change(
                application=obj,
                status=status,
                occurred_at=form.cleaned_data["record_occurred_at"],
                actor=request.user,
            )
        except services.EventRejected as exc:
            # The application changed since the form was loaded (a lender event came in).
            self.message_user(request, exc.detail, messages.ERROR)
            request._status_change_rejected = True
            return
        obj.refresh_from_db()
        self.message_user(request, f"Recorded: the application is now {result.application.get_status_display().lower()}.")

    def log_change(self, request, obj, message):
        if getattr(request, "_status_change_rejected", False):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request, obj):
        if getattr(request, "_status_change_rejected", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def save_related(self, request, form, formsets, change):
        # The timeline is read-only; nothing to save.
        pass

    def construct_change_message(self, request, form, formsets, add=False):
        status = form.cleaned_data.get("record_status")
        return [{"changed": {"fields": [f"status recorded by staff: {status}"]}}] if status else []


# -- deliveries --------------------------------------------------------------------------------


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(PracticeLocalTimes, PracticeScopedAdmin):
    list_display = [
        "id",
        "alert_type",
        "application",
        "recipient",
        "practice",
        "delivery_mode",
        "status",
        "attempts",
        "created_at",
        "sent_at",
        "last_error",
    ]
    list_filter = ["practice", "status", "alert_type", "delivery_mode"]
    search_fields = ["=application__lender_application_id", "^recipient__email"]
    list_select_related = ["application", "recipient", "practice"]
    show_full_result_count = False
    list_per_page = 100
    actions = ["retry_failed"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, *args):
        return False

    @admin.action(description="Retry the selected failed alerts", permissions=["change"])
    def retry_failed(self, request, queryset):
        selected = queryset.count()
        retried = services.retry_deliveries(self.scope_queryset(request, queryset, "change"))
        skipped = selected - retried
        text = f"Sending {retried} alert{'s' if retried != 1 else ''} again."
        if skipped:
            text += f" Skipped {skipped}: only failed alerts can be retried (the others are pending, sending, sent or cancelled)."
        self.message_user(request, text, messages.SUCCESS if not skipped else messages.WARNING)


# -- lender webhook settings (practice admins only; in admin_lender) -----------------------------

admin.site.register(PracticeLenderSettings, PracticeLenderSettingsAdmin)


# -- my notification preferences ------------------------------------------------------------------


class PreferencesForm(forms.Form):
    delivery_mode = forms.ChoiceField(
        label="How to send them", choices=DeliveryMode.choices, widget=forms.RadioSelect
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for alert_type in AlertType:
            self.fields[f"type_{alert_type.value}"] = forms.BooleanField(label=alert_type.label, required=False)

    def type_fields(self):
        return [self[f"type_{t.value}"] for t in AlertType]


def member_practices(user):
    """The offices whose alerts this user can receive: their memberships (tenancy decides)."""
    ids = tenancy.practice_ids_for(user)
    if ids is None:  # a superuser: only offices they are a member of send them alerts
        ids = set(Membership.objects.filter(user=user).values_list("practice_id", flat=True))
    return Practice.objects.filter(pk__in=ids).order_by("name")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(ReadOnlyAdmin, PracticeScopedAdmin):
    """Only hosts the "My notification preferences" page: each member edits their own."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and (obj is None or obj.user_id == request.user.pk)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff




    def get_urls(self):
        return [
            path("my/", self.admin_site.admin_view(self.my_preferences_view), name="notifications_my_preferences"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        return HttpResponseRedirect(reverse("admin:notifications_my_preferences"))

    def my_preferences_view(self, request: HttpRequest):
        practices = list(member_practices(request.user))
        requested = request.POST.get("practice") if request.method == "POST" else request.GET.get("practice")
        practice = practices[0] if practices else None
        if requested:
            practice = next((p for p in practices if str(p.pk) == requested), None)
            if practice is None:
                raise Http404("No such practice among yours.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "My notification preferences",
            "practices": practices,
            "practice": practice,
        }
        if practice is None:
            return TemplateResponse(request, "admin/notifications/my_preferences.html", context)

        current_off = set(
            NotificationPreference.objects.filter(user=request.user, practice=practice, enabled=False).values_list(
                "alert_type", flat=True
            )
        )
        current_mode = (
            NotificationSettings.objects.filter(user=request.user, practice=practice)
            .values_list("delivery_mode", flat=True)
            .first()
            or DeliveryMode.IMMEDIATE
        )
        initial = {"delivery_mode": current_mode, **{f"type_{t.value}": t.value not in current_off for t in AlertType}}
        form = PreferencesForm(request.POST if request.method == "POST" else None, initial=initial)
        if request.method == "POST" and form.is_valid():
            services.save_preferences(
                user=request.user,
                practice=practice,
                enabled={t.value: form.cleaned_data[f"type_{t.value}"] for t in AlertType},
                delivery_mode=form.cleaned_data["delivery_mode"],
            )
            self.message_user(request, f"Saved your notification preferences for {practice}.", messages.SUCCESS)
            # "Save them and show ...": the practice the member switched to while changes were pending.
            then = next((p for p in practices if str(p.pk) == request.POST.get("then_practice")), practice)
            return HttpResponseRedirect(f"{reverse('admin:notifications_my_preferences')}?practice={then.pk}")
        context["form"] = form
        return TemplateResponse(request, "admin/notifications/my_preferences.html", context)
