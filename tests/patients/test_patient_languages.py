"""A patient's preferred language on the chart: the CSV import reads it as people write it, the
patient list shows it and filters by it, the form edits it; staff pages stay English."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from patients import imports
from patients.models import Patient
from tests.factories import PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

HEADER = "Chart Number,First Name,Last Name,DOB,Email,Consent,Preferred Language\n"


def test_the_import_reads_a_language_as_a_chart_export_writes_it(practice_a):
    rows = "".join(
        f"L{index},Ana,Ruiz,1980-05-17,ana{index}@example.com,yes,{written}\n"
        for index, written in enumerate(["es", "SPA", "Spanish", "Español", "espanol", "en", "English", "eng", ""])
    )
    report = imports.validate_rows(practice=practice_a, text=HEADER + rows)
    assert [row.patient.preferred_language for row in report.valid_rows] == ["es"] * 5 + ["en"] * 4
    assert report.valid_rows[0].language == "Spanish"


def test_an_unknown_language_is_a_row_error_that_names_the_choices(practice_a):
    report = imports.validate_rows(practice=practice_a, text=HEADER + "L1,Ana,Ruiz,1980-05-17,ana@example.com,yes,Klingon\n")
    assert report.valid_rows == []
    [(column, message)] = report.invalid_rows[0].errors
    assert column == "preferred_language"
    assert message == (
        "“Klingon” is not a language the portal speaks; use en (English) or es (Spanish), or leave it blank for the "
        "practice's language."
    )


def test_without_the_column_patients_get_the_practices_language(practice_a):
    practice_a.default_language = "es"
    practice_a.save()
    report = imports.validate_rows(practice=practice_a, text="chart_number,first_name\nL1,Ana\n")
    assert report.valid_rows[0].patient.preferred_language == "es"


def test_the_import_saves_the_language_and_its_preview_shows_it(client_a, practice_a):
    upload = SimpleUploadedFile("p.csv", (HEADER + "L1,Ana,Ruiz,1980-05-17,ana@example.com,yes,Español\n").encode(), content_type="text/csv")
    preview = client_a.post(reverse("admin:patients_patient_import"), {"practice": practice_a.pk, "file": upload})
    assert "<td>Spanish</td>" in preview.content.decode()
    client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": preview.context["token"]})
    assert Patient.objects.get(chart_number="L1").preferred_language == "es"


def test_the_patient_list_shows_and_filters_the_language_within_the_practice(client_a, practice_a):
    PatientFactory(practice=practice_a, last_name="Ruiz", preferred_language="es")
    PatientFactory(practice=practice_a, last_name="Smith", preferred_language="en")
    PatientFactory(practice=PracticeFactory(), last_name="Otra", preferred_language="es")
    content = client_a.get(reverse("admin:patients_patient_changelist"), {"preferred_language__exact": "es"}).content.decode()
    assert "Ruiz" in content and "Smith" not in content and "Otra" not in content
    assert '<td class="field-language">Spanish</td>' in content


def test_the_patient_form_edits_the_language(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    page = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert 'name="preferred_language"' in page and '<option value="es">Spanish (Español)</option>' in page
