"""The admin of the ground layer: practices, their team members and patients (with the CSV import of
`patients.admin_import`); the email and text opt-out lists are `patients.admin_opt_outs`. The
portal's columns, actions and pages on the patient admin are added by `invitations.admin.patients`,
which registers its extension in place of `PatientAdmin`."""

import secrets

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from core import languages
from core.phones import InvalidPhoneNumber, display_phone, normalise_phone

from . import audit, tenancy
from .admin_import import PatientImportViews
from .admin_opt_outs import EmailOptOutAdmin, SmsOptOutAdmin  # registered there (kept apart: module size)
from .admin_scoping import PracticeScopedAdmin, PracticeScopedForm
from .audit import AuditAction
from .models import BulkChannels, Membership, Patient, Practice, normalise_email
from .paging import CappedCountPaginator
from .staff_auth import welcome
from .staff_auth.admin import reset_two_factor
from .timezones import PracticeLocalTimes

User = get_user_model()

__all__ = [
    "PracticeAdmin", "MembershipAdmin", "PatientAdminForm", "PatientAdmin", "EmailOptOutAdmin", "SmsOptOutAdmin",
]


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


class MobilePhoneField(forms.CharField):
    """The chart's mobile number, typed in any usual local form and shown as staff read it. The
    model reads it into international form in the practice's country (`Patient.clean_fields`),
    so a bad number is an error on this field saying what is wrong with it."""

    #: The practice's country, set by the form: how the stored number is shown and compared.
    region = "US"

    def __init__(self, *args, max_length=None, **kwargs):
        # As typed ("+44 (0) 7700 900 123") a number is longer than its stored E.164 form.
        super().__init__(*args, max_length=40, **kwargs)

    def prepare_value(self, value):
        return display_phone(value, self.region) if value and str(value).startswith("+") else value

    def has_changed(self, initial, data) -> bool:
        # "(617) 555-0123" typed over the stored "+16175550123" is the same number: not a change
        # (the audit trail and the revocation of links to an old number go by this).
        typed = (data or "").strip()
        if not typed or not initial:
            return bool(typed) != bool(initial)
        try:
            return normalise_phone(typed, self.region) != initial
        except InvalidPhoneNumber:
            return True


class PatientAdminForm(PracticeScopedForm):
    class Meta:
        model = Patient
        fields = "__all__"
        field_classes = {"mobile_phone": MobilePhoneField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "mobile_phone" in self.fields and self.instance.practice_id:
            self.fields["mobile_phone"].region = self.instance.practice.country

    def clean_chart_number(self):
        number = (self.cleaned_data.get("chart_number") or "").strip()
        practice = self.cleaned_data.get("practice") or (
            self.instance.practice if self.instance.practice_id else None
        )
        if number and practice:
            clash = Patient.objects.filter(practice=practice, chart_number=number).exclude(pk=self.instance.pk)
            if clash.exists():
                raise forms.ValidationError(
                    "Another patient of this practice has chart number %(number)s.",
                    params={"number": number},
                )
        return number


class PortalAccountFilter(admin.SimpleListFilter):
    title = "portal account"
    parameter_name = "portal"

    def lookups(self, request, model_admin):
        return [("yes", "Registered"), ("no", "Not registered")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.with_portal_account()
        if self.value() == "no":
            return queryset.without_portal_account()
        return queryset


class HasEmailFilter(admin.SimpleListFilter):
    title = "email address"
    parameter_name = "has_email"

    def lookups(self, request, model_admin):
        return [("yes", "Has an email address"), ("no", "No email address")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(email="")
        if self.value() == "no":
            return queryset.filter(email="")
        return queryset


@admin.register(Patient)
class PatientAdmin(PatientImportViews, PracticeLocalTimes, PracticeScopedAdmin):
    form = PatientAdminForm
    # Fits a 1366-pixel screen beside the menu and the filters: one name column, one contact column
    # (email, then mobile), the practice only for users of several (PracticeScopedAdmin).
    list_display = ["chart_number", "name", "date_of_birth", "contact", "language", "practice"]
    list_display_links = ["chart_number", "name"]
    list_filter = [
        "practice",
        PortalAccountFilter,
        HasEmailFilter,
        "email_consent",
        "sms_consent",
        "deceased",
        "self_signup_unverified",
        "birth_sex",
        "preferred_language",
    ]
    # The search is `Patient.objects.search` (get_search_results): prefix lookups of the chart's
    # search keys, each served by an index. The list names the field only so the box is shown.
    search_fields = ["search_last"]
    search_help_text = (
        "Type the start of a name (accents and capitals do not matter: garcia finds García), a first and last "
        "name, a chart number (5, 0000005 or 01-0000005), a phone or mobile number in any format, the start "
        "of an email, or a date of birth (MM/DD/YYYY)."
    )
    list_select_related = ["practice"]
    list_per_page = 50
    show_full_result_count = False
    paginator = CappedCountPaginator  # counting a million joined rows took ~1 s per page view
    readonly_fields = [
        "portal_account", "registered_at", "created_at", "updated_at", "mobile_number", "sms_consent_record",
        "mobile_undeliverable",
    ]
    fieldsets = [
        (None, {"fields": ["practice", "chart_number", ("first_name", "last_name"), "date_of_birth", "birth_sex"]}),
        (
            "Contact",
            {"fields": ["email", "phone", "mobile_phone", "zip_code", "email_consent", "sms_consent", "preferred_language"]},
        ),
        (
            "Status",
            {
                "fields": [
                    "deceased",
                    "self_signup_unverified",
                    "portal_account",
                    "registered_at",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    change_form_template = "admin/patients/patient/change_form.html"
    #: Bulk invitations beyond this go through Activate Now, which runs in the background.
    max_action_rows = 500

    @admin.display(description="portal account", boolean=True, ordering="portal_user")
    def portal_account(self, obj: Patient) -> bool:
        return obj.has_portal_account

    @admin.display(description="name", ordering="last_name")
    def name(self, obj: Patient) -> str:
        return ", ".join(part for part in (obj.last_name, obj.first_name) if part) or "(no name)"

    @admin.display(description="email / mobile phone", ordering="email")
    def contact(self, obj: Patient):
        mobile = self.mobile_number(obj)
        if not mobile:
            return obj.email or "—"
        return format_html('{}<br><span class="mobile">{}</span>', obj.email or "—", mobile)

    @admin.display(description="language", ordering="preferred_language")
    def language(self, obj: Patient) -> str:
        """The patient's language in English (the admin's language), e.g. "Spanish"."""
        return languages.english_name(obj.preferred_language)

    @admin.display(description="mobile phone")  # not sortable: no index serves it on a million rows
    def mobile_number(self, obj: Patient) -> str:
        return display_phone(obj.mobile_phone, obj.practice.country) if obj.mobile_phone else ""

    @admin.display(description="text consent")
    def sms_consent_record(self, obj: Patient) -> str:
        """Who gave or withdrew text consent, and when (in the practice's time zone: the change
        page runs under it)."""
        state = "given" if obj.sms_consent else "withdrawn"
        if obj.sms_consent_changed_at is None:
            return f"{state.capitalize()}; when and by whom was not recorded." if obj.sms_consent else "Never given."
        who = obj.sms_consent_changed_by
        by = f" by {who.get_full_name() or who.get_username()}" if who is not None else ""
        return f"{state.capitalize()}{by} on {date_format(timezone.localtime(obj.sms_consent_changed_at), 'N j, Y')}."

    @admin.display(description="texts to this number")
    def mobile_undeliverable(self, obj: Patient) -> str:
        return (
            f"Cannot be delivered: {obj.undeliverable_mobile_reason or 'the text service refused the number'}. "
            "Correct the mobile number to text this patient again."
        )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        # On the chart: the consent record next to the consent, the undeliverable mark while it is
        # still the number on file; the number as staff read it for those who only view.
        extra = ["sms_consent_record"]
        if obj.mobile_phone and obj.undeliverable_mobile == obj.mobile_phone:
            extra.append("mobile_undeliverable")
        read_only = not self.has_change_permission(request, obj)
        changed = []
        for name, options in fieldsets:
            fields = []
            for field in options["fields"]:
                fields.append("mobile_number" if read_only and field == "mobile_phone" else field)
                if field == "sms_consent":
                    fields.extend(extra)
            changed.append((name, {**options, "fields": fields}))
        return changed

    # -- queryset, forms and saving --------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if "sms_consent" in form.changed_data:
            obj.note_sms_consent_change(by=request.user, now=timezone.now())
        super().save_model(request, obj, form, change)
        if not change:
            audit.record(
                practice_id=obj.practice_id, actor=request.user, action=AuditAction.PATIENT_ADDED,
                summary=f"Added chart {obj.chart_number}", patient_id=obj.pk,
            )
        elif form.changed_data:
            labels, _ = audit.describe_changes(form, with_values=False)  # names only: never patient data
            audit.record(
                practice_id=obj.practice_id, actor=request.user, action=AuditAction.PATIENT_CHANGED,
                summary=f"Changed {labels}", patient_id=obj.pk, details={"fields": list(form.changed_data)},
            )

    #: A name search finds at most this many patients, then sorts them. Found in two steps: the
    #: matching ids without ORDER BY (bitmap scans of the prefix indexes, milliseconds over a
    #: million rows), then those rows in list order. In one step PostgreSQL walks the name index in
    #: sort order hoping for early matches, which takes seconds when the matches sort late.
    SEARCH_MATCH_CAP = 2000

    def get_ordering(self, request):
        if request.GET.get("q", "").strip():
            # Search results are at most SEARCH_MATCH_CAP rows: sorting them by an expression the
            # name index cannot serve makes PostgreSQL fetch them by id and sort in memory, instead
            # of walking the whole index in name order looking for them.
            return [Lower("last_name"), Lower("first_name"), "id"]
        return super().get_ordering(request)

    def search_regions(self, request) -> list[str]:
        """The countries of the practices the user searches, for phone numbers typed without a
        country code."""
        ids = tenancy.practice_ids_for(request.user, "patients.view_patient")
        practices = Practice.objects.all() if ids is None else Practice.objects.filter(pk__in=ids)
        return sorted(set(practices.values_list("country", flat=True)[:50])) or ["US"]

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        matched = queryset.search(search_term, regions=self.search_regions(request))
        ids = list(matched.order_by().values_list("pk", flat=True)[: self.SEARCH_MATCH_CAP + 1])
        if len(ids) > self.SEARCH_MATCH_CAP:
            ids = ids[: self.SEARCH_MATCH_CAP]
            self.message_user(
                request,
                f"More than {self.SEARCH_MATCH_CAP:,} patients match “{search_term.strip()}”; showing "
                f"{self.SEARCH_MATCH_CAP:,} of them. Type more of the name, or search by chart number or "
                "date of birth.",
                messages.INFO,
            )
        return queryset.filter(pk__in=ids), False

