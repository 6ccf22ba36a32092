import datetime
import secrets
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.template.defaultfilters import pluralize
from django.urls import path, reverse

from . import imports
from .admin_scoping import PracticeScopedAdmin, PracticeScopedForm
from .models import EmailOptOut, Membership, Patient, Practice, normalise_email

User = get_user_model()


@admin.register(Practice)
class PracticeAdmin(PracticeScopedAdmin):
    practice_lookup = "pk"
    list_display = ["name", "time_zone", "invitations_enabled", "activation_email_enabled", "link_lifetime_days"]
    search_fields = ["name"]
    fieldsets = [
        (None, {"fields": ["name", "time_zone", "contact_email", "contact_phone", "logo"]}),
        (
            "Patient portal",
            {
                "fields": [
                    "invitations_enabled",
                    "activation_email_enabled",
                    "link_lifetime_days",
                    "self_signup_enabled",
                ]
            },
        ),
        (
            "Monthly re-invite",
            {"fields": ["monthly_reinvite_enabled", "monthly_reinvite_day", "monthly_reinvite_cap"]},
        ),
    ]

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class MembershipAddForm(PracticeScopedForm):
    """Adds a team member by email: an existing staff user joins, or a new account is made."""

    email = forms.EmailField(help_text="Alerts and password resets go to this address.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)

    class Meta:
        model = Membership
        fields = ["practice", "role"]

    def clean(self):
        cleaned = super().clean()
        email = normalise_email(cleaned.get("email"))
        practice = cleaned.get("practice")
        if email and practice and Membership.objects.filter(practice=practice, user__email__iexact=email).exists():
            self.add_error("email", "This person is already a member of this practice.")
        return cleaned

    def save(self, commit=True):
        email = normalise_email(self.cleaned_data["email"])
        user = User.objects.filter(username=email).first()
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
class MembershipAdmin(PracticeScopedAdmin):
    list_display = ["user", "user_email", "practice", "role", "created_at"]
    list_filter = ["practice", "role"]
    search_fields = ["user__username", "user__email", "user__first_name", "user__last_name"]
    list_select_related = ["user", "practice"]

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

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            f"{obj.user.email} can now sign in. If they are new, they set their password with "
            "'Forgotten your password?' on the login page.",
            messages.INFO,
        )
        return super().response_add(request, obj, post_url_continue)


class PatientAdminForm(PracticeScopedForm):
    class Meta:
        model = Patient
        fields = "__all__"

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


DOB_SEARCH_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y")


def parse_search_date(term: str):
    for fmt in DOB_SEARCH_FORMATS:
        try:
            return datetime.datetime.strptime(term.strip(), fmt).date()
        except ValueError:
            continue
    return None


class PatientImportForm(forms.Form):
    practice = forms.ModelChoiceField(queryset=Practice.objects.none())
    file = forms.FileField(help_text="A CSV file with a header row.")

    def __init__(self, *args, practices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["practice"].queryset = practices
        if len(practices) == 1:
            self.fields["practice"].initial = practices[0].pk
            self.fields["practice"].widget = forms.HiddenInput()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.PATIENT_IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size // 1024:,} KB; the limit is "
                f"{settings.PATIENT_IMPORT_MAX_BYTES // 1024:,} KB. Split it into smaller files."
            )
        if not upload.name.lower().endswith((".csv", ".txt")):
            raise forms.ValidationError("Upload a .csv file (save the spreadsheet as CSV first).")
        return upload


@admin.register(Patient)
class PatientAdmin(PracticeScopedAdmin):
    form = PatientAdminForm
    list_display = [
        "chart_number",
        "last_name",
        "first_name",
        "date_of_birth",
        "email",
        "practice",
        "portal_account",
    ]
    list_display_links = ["chart_number", "last_name"]
    list_filter = ["practice", PortalAccountFilter, HasEmailFilter, "email_consent", "deceased", "birth_sex"]
    # Prefix and exact matches use the indexes; a date of birth in the search box is understood too.
    search_fields = ["^last_name", "^first_name", "=chart_number", "^email"]
    search_help_text = "Search by last or first name, email, chart number or date of birth (YYYY-MM-DD or MM/DD/YYYY)."
    list_select_related = ["practice"]
    list_per_page = 50
    show_full_result_count = False
    readonly_fields = ["portal_account", "registered_at", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["practice", "chart_number", ("first_name", "last_name"), "date_of_birth", "birth_sex"]}),
        ("Contact", {"fields": ["email", "phone", "zip_code", "email_consent"]}),
        ("Status", {"fields": ["deceased", "portal_account", "registered_at", "created_at", "updated_at"]}),
    ]

    @admin.display(description="portal account", boolean=True, ordering="portal_user")
    def portal_account(self, obj: Patient) -> bool:
        return obj.has_portal_account

    def get_search_results(self, request, queryset, search_term):
        date = parse_search_date(search_term)
        if date is not None:
            return queryset.filter(date_of_birth=date), False
        return super().get_search_results(request, queryset, search_term)

    # -- CSV import ----------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="%s_%s_import" % info),
        ] + super().get_urls()

    def import_view(self, request: HttpRequest):
        if not self.has_add_permission(request):
            raise PermissionDenied("Your role does not allow adding patients.")
        practices = self.scoped_practices(request, "add")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import patients from CSV",
            "columns": list(imports.COLUMNS),
        }
        if request.method == "POST" and "confirm" in request.POST:
            return self._import_confirm(request, practices, context)

        form = PatientImportForm(request.POST or None, request.FILES or None, practices=practices)
        if request.method == "POST" and form.is_valid():
            practice = form.cleaned_data["practice"]
            raw = form.cleaned_data["file"].read()
            report = imports.validate_rows(practice=practice, text=imports.decode(raw))
            token = uuid.uuid4().hex
            if not report.file_errors and report.valid_rows:
                default_storage.save(f"imports/{token}.csv", ContentFile(raw))
                request.session[f"patient_import_{token}"] = practice.pk
            context.update(
                report=report,
                practice=practice,
                token=token,
                invalid_rows=report.invalid_rows[:500],
                more_invalid=max(0, len(report.invalid_rows) - 500),
            )
            return TemplateResponse(request, "admin/patients/patient/import_preview.html", context)
        context["form"] = form
        return TemplateResponse(request, "admin/patients/patient/import_form.html", context)

    def _import_confirm(self, request, practices, context):
        token = request.POST.get("token", "")
        practice_id = request.session.get(f"patient_import_{token}") if token.isalnum() else None
        practice = next((p for p in practices if p.pk == practice_id), None)
        name = f"imports/{token}.csv"
        changelist = reverse("admin:patients_patient_changelist")
        if practice is None or not default_storage.exists(name):
            self.message_user(request, "That import preview has expired; upload the file again.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:patients_patient_import"))
        with default_storage.open(name, "rb") as handle:
            raw = handle.read()
        # Validate again: the practice's patients may have changed since the preview.
        report = imports.validate_rows(practice=practice, text=imports.decode(raw))
        try:
            created = imports.import_valid_rows(report)
        except imports.ImportConflict as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:patients_patient_import"))
        finally:
            default_storage.delete(name)
            request.session.pop(f"patient_import_{token}", None)
        skipped = len(report.invalid_rows)
        text = f"Imported {created:,} patient{pluralize(created)} into {practice}."
        if skipped:
            text += f" Skipped {skipped:,} rows with errors (lines {_line_summary(report.invalid_rows)})."
        self.message_user(request, text, messages.SUCCESS if not skipped else messages.WARNING)
        return HttpResponseRedirect(f"{changelist}?practice__id__exact={practice.pk}")


def _line_summary(rows, limit: int = 10) -> str:
    lines = ", ".join(str(row.line) for row in rows[:limit])
    return lines + (", ..." if len(rows) > limit else "")


@admin.register(EmailOptOut)
class EmailOptOutAdmin(PracticeScopedAdmin):
    list_display = ["email", "practice", "reason", "created_at", "created_by"]
    list_filter = ["practice", "reason"]
    search_fields = ["=email"]
    list_select_related = ["practice", "created_by"]
    readonly_fields = ["created_at", "created_by"]
    fields = ["practice", "email", "reason", "created_at", "created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

