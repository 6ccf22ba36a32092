"""The patient list and a patient's page (with the CSV import of `patients.admin.imports`). The
portal's columns, actions and pages on it are added by `invitations.admin.patients`, which registers
its extension in place of `PatientAdmin` (the app above extends the app below)."""


from django import forms
from django.contrib import admin, messages
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from core import languages
from core.phones import InvalidPhoneNumber, display_phone, normalise_phone

from patients import audit, tenancy
from patients.admin.imports import PatientImportViews
from patients.admin.scoping import PracticeScopedAdmin, PracticeScopedForm
from patients.audit import AuditAction
from patients.models import Patient, Practice
from patients.admin.paging import CappedCountPaginator
from patients.timezones import PracticeLocalTimes



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
