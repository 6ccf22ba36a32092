"""Practices (their settings, for the practice's admins) and the team members of each (added by email,
welcomed with a link to choose their password; role changes and removals audited)."""

import secrets

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html


from patients import audit
from patients.admin.scoping import PracticeScopedAdmin, PracticeScopedForm
from patients.audit import AuditAction
from patients.models import BulkChannels, Membership, Practice, normalise_email
from patients.staff_auth import welcome
from patients.staff_auth.admin import reset_two_factor
from patients.timezones import PracticeLocalTimes

User = get_user_model()


@admin.register(Practice)
class PracticeAdmin(PracticeScopedAdmin):
    practice_lookup = "pk"
    list_display = [
        "name", "time_zone", "invitations_enabled", "activation_email_enabled", "text_invitations_enabled",
        "link_lifetime_days",
    ]
    search_fields = ["name"]
    fieldsets = [
        (None, {"fields": ["name", "time_zone", "contact_email", "contact_phone", "logo"]}),
        (
            "Patient portal",
            {
                "fields": [
                    "invitations_enabled",
                    "activation_email_enabled",
                    "text_invitations_enabled",
                    "country",
                    "bulk_channels",
                    "link_lifetime_days",
                    "self_signup_enabled",
                    "request_access_page",
                ]
            },
        ),
        (
            "Monthly re-invite",
            {"fields": ["monthly_reinvite_enabled", "monthly_reinvite_day", "monthly_reinvite_cap"]},
        ),
        ("Languages", {"fields": ["default_language", "language_assistance_notice", "language_assistance_text"]}),
        ("Staff sign-in", {"fields": ["require_two_factor", "staff_idle_minutes"]}),
    ]

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "request_access_page"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in PRACTICE_HELP:
            field.help_text = PRACTICE_HELP[db_field.name]
        return field

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            labels, values = audit.describe_changes(form, with_values=True)
            audit.record(
                practice_id=obj.pk, actor=request.user, action=AuditAction.PRACTICE_SETTINGS,
                summary=f"Changed {labels}", details=values,
            )
        if obj.bulk_channels != BulkChannels.EMAIL and not obj.text_invitations_enabled:
            self.message_user(
                request,
                "Activate Now and the monthly re-invite send emails only until invitation texts are enabled.",
                messages.WARNING,
            )

    @admin.display(description="request portal access page")
    def request_access_page(self, obj: Practice):
        if obj is None or obj.pk is None:
            return "Shown once the practice is saved."
        url = settings.PORTAL_BASE_URL + reverse("portal:request_access", args=[obj.pk])
        if not obj.self_signup_enabled:
            return format_html("{} <small>(closed: tick the box above to open it)</small>", url)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a> <small>Link to it from your website or booking page.</small>', url, url)


#: The text settings' help on the practice page: what each choice means for patients.
PRACTICE_HELP = {
    "text_invitations_enabled": (
        "On: the front desk may send an invitation by text message (or by email and text), and Activate Now "
        "and the monthly re-invite may text as chosen below. A text goes only to a patient with a mobile "
        "number on the chart who consented to texts and never replied STOP."
    ),
    "country": (
        "Mobile numbers typed without a country code (on the patient form, in CSV imports and on the text "
        "opt-out list) are read as this country's."
    ),
    "bulk_channels": (
        "“Email; a text…” texts only the patients who cannot get an email (no usable address or no email "
        "consent); “Email and text” sends both wherever each can be used. Texts go only while invitation "
        "texts are enabled."
    ),
}


class MembershipAddForm(PracticeScopedForm):
    """Adds a team member by email: an existing staff user joins, or a new account is made."""

    email = forms.EmailField(help_text="Alerts and password resets go to this address.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)

    class Meta:
        model = Membership
        fields = ["practice", "role"]

    @staticmethod
    def existing_staff_user(email: str):
        """The staff account this address belongs to, if any. Patient accounts (usernames never
        contain '@') are never turned into staff accounts."""
        return (
            User.objects.filter(Q(username__iexact=email) | Q(email__iexact=email, is_staff=True))
            .order_by("-is_staff", "pk")
            .first()
        )

    def clean(self):
        cleaned = super().clean()
        email = normalise_email(cleaned.get("email"))
        practice = cleaned.get("practice")
        user = self.existing_staff_user(email) if email else None
        if user is not None and practice and Membership.objects.filter(practice=practice, user=user).exists():
            self.add_error("email", "This person is already a member of this practice.")
        self.existing_user = user
        return cleaned

    def save(self, commit=True):
        email = normalise_email(self.cleaned_data["email"])
        user = self.existing_user
        if user is None:
            user = User(
                username=email,
                email=email,
                first_name=self.cleaned_data["first_name"],
                last_name=self.cleaned_data["last_name"],
                is_staff=True,
            )
            # A random password nobody knows: the new member sets their own through
            # "Forgotten your password?" on the login page.
            user.set_password(secrets.token_urlsafe(32))
            user.save()
        self.instance.user = user
        return super().save(commit=commit)


@admin.register(Membership)
class MembershipAdmin(PracticeLocalTimes, PracticeScopedAdmin):
    list_display = ["user", "user_email", "practice", "role", "created_at"]
    list_filter = ["practice", "role"]
    search_fields = ["user__username", "user__email", "user__first_name", "user__last_name"]
    list_select_related = ["user", "practice"]
    actions = [reset_two_factor]

    @admin.display(description="email", ordering="user__email")
    def user_email(self, obj: Membership) -> str:
        return obj.user.email

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["practice", "email", "first_name", "last_name", "role"]
        return ["user", "practice", "role"]

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "user"] if obj is not None else fields

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            audit.record(
                practice_id=obj.practice_id, actor=request.user, action=AuditAction.MEMBER_ADDED,
                summary=f"Added {obj.user.email or obj.user} as {obj.get_role_display()}",
            )
            request._new_staff_account = form.existing_user is None
            welcome.welcome_after_commit(obj, added_by=request.user, new_account=request._new_staff_account)
        elif "role" in form.changed_data:
            audit.record(
                practice_id=obj.practice_id, actor=request.user, action=AuditAction.MEMBER_CHANGED,
                summary=f"{obj.user.email or obj.user} is now {obj.get_role_display()}",
                details={"role": obj.role},
            )

    def delete_model(self, request, obj):
        _audit_membership_removed(request, [obj])
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        _audit_membership_removed(request, list(queryset.select_related("user")))
        super().delete_queryset(request, queryset)

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_new_staff_account", False):
            text = (f"{obj.user.email} can now sign in: we are emailing them a link to choose their password "
                    "(it works for a few days; after that they use 'Forgotten your password?' on the sign-in page).")
        else:
            text = f"{obj.user.email or obj.user} can now work with {obj.practice}; we are emailing them to say so."
        self.message_user(request, text, messages.INFO)
        return super().response_add(request, obj, post_url_continue)


def _audit_membership_removed(request, memberships) -> None:
    audit.record_many(
        actor=request.user,
        action=AuditAction.MEMBER_REMOVED,
        rows=[(m.practice_id, None, f"Removed {m.user.email or m.user} ({m.get_role_display()})") for m in memberships],
    )
