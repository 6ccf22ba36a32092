"""Admin for the practices' lender webhook settings: setting up and rotating the secret the
lender signs its payment-plan events with. Shown to practice admins only (registered in
`notifications.admin`)."""

import datetime
import zoneinfo
from typing import Optional

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from patients import tenancy
from patients.admin.scoping import PracticeScopedAdmin, PracticeScopedForm
from patients.models import Practice, Role

from .models import PracticeLenderSettings
from .views import SIGNATURE_HEADER, TIMESTAMP_HEADER


class LenderSettingsForm(PracticeScopedForm):
    rotate_secret = forms.BooleanField(
        required=False,
        label="Rotate the secret",
        help_text="Makes a new secret. The old one keeps working for 24 hours so the lender can switch over.",
    )

    class Meta:
        model = PracticeLenderSettings
        fields = ["practice"]


class PracticeNamed(forms.Widget):
    """The only practice the user can set up, named rather than offered as a choice (the field is
    disabled, so the form uses its initial value whatever is posted)."""

    def __init__(self, practice: Practice, attrs=None):
        super().__init__(attrs)
        self.practice = practice

    def render(self, name, value, attrs=None, renderer=None):
        return format_html('<strong id="{}">{}</strong>', (attrs or {}).get("id", ""), self.practice)


def _when(moment: Optional[datetime.datetime], time_zone: str) -> str:
    return date_format(timezone.localtime(moment, zoneinfo.ZoneInfo(time_zone)), "N j, Y, g:i A") if moment else ""


class PracticeLenderSettingsAdmin(PracticeScopedAdmin):
    """The secret is shown to practice admins only: they give it to the lender."""

    form = LenderSettingsForm
    list_display = ["practice", "set_up", "last_rotated", "previous_secret"]
    list_select_related = ["practice"]
    ordering = ["practice__name"]
    readonly_fields = ["webhook_secret_display", "previous_secret", "set_up", "last_rotated"]
    actions = ["rotate_secrets"]

    def _admin_practice_ids(self, request) -> Optional[set[int]]:
        return tenancy.practice_ids_with_role(request.user, frozenset({Role.ADMIN}))

    def scoped_practice_ids(self, request, action="view"):
        ids = super().scoped_practice_ids(request, action)
        admin_ids = self._admin_practice_ids(request)
        if ids is None or admin_ids is None:
            return ids
        return ids & admin_ids

    def _choice_practice_ids(self, request):
        return self.scoped_practice_ids(request, "add")

    def _practices_to_set_up(self, request):
        """The user's practices (as practice admin) that have no webhook secret yet."""
        ids = self._choice_practice_ids(request)
        practices = Practice.objects.filter(lender_settings__isnull=True).order_by("name")
        return practices if ids is None else practices.filter(pk__in=ids)

    def _allowed_on(self, request, action, obj):
        if obj is not None and obj.pk is not None:
            ids = self.scoped_practice_ids(request, action)
            return ids is None or obj.practice_id in ids
        return super()._allowed_on(request, action, obj)

    def has_module_permission(self, request):
        ids = self._admin_practice_ids(request)
        return super().has_module_permission(request) and (ids is None or bool(ids))

    def has_add_permission(self, request, *args):
        # One secret per practice: nothing to add once every practice of the user has one.
        return super().has_add_permission(request, *args) and self._practices_to_set_up(request).exists()

    def get_list_display(self, request):
        # Each row is one practice's secret, so the practice stays even for a single-practice admin
        # (the mixin drops that column for them on other lists).
        return list(self.list_display)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["practice"]
        return ["practice", "webhook_secret_display", "rotate_secret", "previous_secret", "last_rotated", "set_up"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "practice":
            # Built here rather than in formfield_for_foreignkey so that the admin adds no
            # "change/view practice" links: this page sets up a secret, not the practice.
            return self._practice_field(request)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _practice_field(self, request) -> forms.ModelChoiceField:
        """The add page's practice (it is read-only once saved): a choice among the user's
        practices without a secret, or the one such practice named."""
        practices = self._practices_to_set_up(request)
        address = request.build_absolute_uri(reverse("notifications:payment_plan_events"))
        help_text = format_html(
            "A secret is generated when you save and shown on the next page (to practice admins only). "
            "Give the lender that secret, the practice id and the address <code>{}</code>. The lender keeps "
            "the secret in its webhook settings for this practice and signs every event with it (header {}, "
            "with the time in {}); the secret itself is never sent.",
            address,
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
        )
        first_two = list(practices[:2])
        if len(first_two) == 1:
            return forms.ModelChoiceField(
                queryset=practices,
                initial=first_two[0].pk,
                disabled=True,
                widget=PracticeNamed(first_two[0]),
                label="Practice",
                help_text=help_text,
            )
        return forms.ModelChoiceField(
            queryset=practices,
            empty_label="Choose the practice",
            label="Practice",
            help_text=format_html("{} Practices that already have a secret are not listed.", help_text),
            error_messages={
                "invalid_choice": "Choose one of your practices that has no webhook secret yet; "
                "to see or rotate an existing secret, open the practice from the list.",
            },
        )

    @admin.display(description="webhook secret")
    def webhook_secret_display(self, obj: PracticeLenderSettings) -> str:
        # The whole address: the lender's system is configured with it, not with a path on this site.
        url = settings.PORTAL_BASE_URL.rstrip("/") + reverse("notifications:payment_plan_events")
        return format_html(
            "<code>{}</code><br><span class='help'>Give the lender this secret, the practice id {} and the address {}.</span>",
            obj.webhook_secret,
            obj.practice_id,
            url,
        )

    @admin.display(description="set up", ordering="created_at")
    def set_up(self, obj: PracticeLenderSettings) -> str:
        return _when(obj.created_at, obj.practice.time_zone)

    @admin.display(description="secret last rotated", ordering="rotated_at")
    def last_rotated(self, obj: PracticeLenderSettings) -> str:
        return _when(obj.rotated_at, obj.practice.time_zone) or "Never"

    @admin.display(description="previous secret")
    def previous_secret(self, obj: PracticeLenderSettings) -> str:
        if not obj.previous_webhook_secret or obj.previous_secret_valid_until is None:
            return "None (never rotated)"
        until = _when(obj.previous_secret_valid_until, obj.practice.time_zone)
        if len(obj.secrets_valid_at(timezone.now())) > 1:
            return f"Still accepted until {until}"
        return f"No longer accepted (since {until})"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.cleaned_data.get("rotate_secret"):
            obj.rotate_secret(now=timezone.now())
            self.message_user(request, "New webhook secret made; give it to the lender. The old one works for 24 more hours.", messages.WARNING)

    def response_add(self, request, obj, post_url_continue=None):
        if "_addanother" in request.POST or IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        # The point of adding is the secret: go where it is shown.
        self.message_user(
            request,
            f"Made the webhook secret for {obj.practice}. Give it to the lender with the practice id and the address shown below.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:notifications_practicelendersettings_change", args=[obj.pk]))

    @admin.action(description="Rotate the webhook secret of the selected practices", permissions=["change"])
    def rotate_secrets(self, request, queryset):
        now = timezone.now()
        rotated = 0
        for lender_settings in self.scope_queryset(request, queryset, "change").select_related("practice"):
            lender_settings.rotate_secret(now=now)
            rotated += 1
        self.message_user(
            request,
            f"Rotated {rotated} secret{'s' if rotated != 1 else ''}. Give the lender the new secret; the old one works for 24 more hours.",
            messages.WARNING,
        )
