"""Importing patients from a CSV file in the patient admin: upload, a preview of every row with its
errors, then the import of the valid rows once confirmed (`patients.imports` reads and checks the
file). `PatientImportViews` is part of `patients.admin.patients.PatientAdmin`."""

import datetime
import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from patients import imports
from patients.models import Practice

#: Uploaded files wait here between the preview and the import. Not under MEDIA_ROOT: they hold
#: patient data and must never be served; unconfirmed previews are deleted after a day.
PREVIEW_MAX_AGE = datetime.timedelta(days=1)


def preview_storage() -> FileSystemStorage:
    # Private: the previews hold patient data (owner-only files, as uploads might be world-readable).
    storage = FileSystemStorage(
        location=settings.VAR_DIR / "imports", file_permissions_mode=0o600, directory_permissions_mode=0o700
    )
    discard_stale_previews(storage, now=timezone.now())
    return storage


def discard_stale_previews(storage: FileSystemStorage, *, now: datetime.datetime) -> int:
    if not storage.exists(""):
        return 0
    stale = [name for name in storage.listdir("")[1] if storage.get_modified_time(name) < now - PREVIEW_MAX_AGE]
    for name in stale:
        storage.delete(name)
    return len(stale)


def _line_summary(rows, limit: int = 10) -> str:
    """"line 4" or "lines 4, 7, ...": where the rows are in the file."""
    lines = ", ".join(str(row.line) for row in rows[:limit])
    return f"line{pluralize(len(rows))} " + lines + (", ..." if len(rows) > limit else "")


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


class PatientImportViews:
    """The import pages (upload and preview, confirm) of the patient admin."""

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
            "guardian_columns": list(imports.GUARDIAN_COLUMNS),
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
                preview_storage().save(f"{token}.csv", ContentFile(raw))
                request.session[f"patient_import_{token}"] = practice.pk
            context.update(
                report=report,
                practice=practice,
                token=token,
                invalid_rows=report.invalid_rows[:500],
                more_invalid=max(0, len(report.invalid_rows) - 500),
                rows_without_mobile=report.rows_without_mobile[:500],
                more_without_mobile=max(0, len(report.rows_without_mobile) - 500),
            )
            return TemplateResponse(request, "admin/patients/patient/import_preview.html", context)
        context["form"] = form
        return TemplateResponse(request, "admin/patients/patient/import_form.html", context)

    def _import_confirm(self, request, practices, context):
        token = request.POST.get("token", "")
        practice_id = request.session.get(f"patient_import_{token}") if token.isalnum() else None
        practice = next((p for p in practices if p.pk == practice_id), None)
        name = f"{token}.csv"
        storage = preview_storage()
        changelist = reverse("admin:patients_patient_changelist")
        if practice is None or not storage.exists(name):
            self.message_user(request, "That import preview has expired; upload the file again.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:patients_patient_import"))
        with storage.open(name, "rb") as handle:
            raw = handle.read()
        # Validate again: the practice's patients may have changed since the preview.
        report = imports.validate_rows(practice=practice, text=imports.decode(raw))
        try:
            created = imports.import_valid_rows(report, practice=practice, actor=request.user)
        except imports.ImportConflict as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:patients_patient_import"))
        finally:
            storage.delete(name)
            request.session.pop(f"patient_import_{token}", None)
        skipped = len(report.invalid_rows)
        text = f"Imported {created:,} patient{pluralize(created)} into {practice}."
        if without_mobile := report.rows_without_mobile:
            text += (
                f" {len(without_mobile):,} of them without their mobile number, which could not be read "
                f"({_line_summary(without_mobile)}); add it on their charts."
            )
        if with_guardian := report.rows_with_guardian:
            text += (
                f" {len(with_guardian):,} of them with a parent, guardian or caregiver ({len(report.guardians):,} "
                f"{'person' if len(report.guardians) == 1 else 'people'}), not invited yet: invite them from the patient's page (Activate Now invites the parents of children too young for their own account)."
            )
        if skipped:
            text += f" Skipped {skipped:,} row{pluralize(skipped)} with errors ({_line_summary(report.invalid_rows)})."
        self.message_user(request, text, messages.WARNING if skipped or without_mobile else messages.SUCCESS)
        return HttpResponseRedirect(f"{changelist}?practice__id__exact={practice.pk}")
