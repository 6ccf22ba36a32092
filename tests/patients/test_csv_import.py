import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from patients import imports
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

HEADER = "Chart Number,First Name,Last Name,DOB,Zip,Email,Phone,Sex,Consent,Deceased\n"
GOOD = "A100,Ann,Lee,1980-05-17,02139,Ann@Example.com,555-0100,F,yes,no\n"
GOOD_US_DATE = "A101,Bo,Kim,05/17/1975,02139-4307,bo@example.com,,M,y,\n"
BAD = "A102,Cy,Ng,2999-01-01,123,not-an-email,,Q,maybe,no\n"
DUP_IN_FILE = "A100,Dee,Lee,1990-01-01,02139,dee@example.com,,F,yes,no\n"
EXISTING = "E1,Eve,Old,1990-01-01,02139,eve@example.com,,F,yes,no\n"


def upload(client, practice, text, name="patients.csv"):
    return client.post(
        reverse("admin:patients_patient_import"),
        {"practice": practice.pk, "file": SimpleUploadedFile(name, text.encode(), content_type="text/csv")},
    )


def test_preview_reports_every_error_by_line_and_column(practice_a):
    PatientFactory(practice=practice_a, chart_number="E1", first_name="Original")
    report = imports.validate_rows(practice=practice_a, text=HEADER + GOOD + GOOD_US_DATE + BAD + DUP_IN_FILE + EXISTING)
    assert [row.line for row in report.valid_rows] == [2, 3]
    errors = {(row.line, column) for row in report.invalid_rows for column, _ in row.errors}
    assert errors >= {
        (4, "date_of_birth"), (4, "zip_code"), (4, "email"), (4, "birth_sex"), (4, "email_consent"),
        (5, "chart_number"), (6, "chart_number"),
    }
    messages = [m for row in report.invalid_rows for _, m in row.errors]
    assert any("repeated (first on line 2)" in m for m in messages)
    assert any("already belongs to a patient" in m for m in messages)


def test_it_imports_only_valid_rows_and_never_overwrites(client_a, practice_a):
    PatientFactory(practice=practice_a, chart_number="E1", first_name="Original")
    response = upload(client_a, practice_a, HEADER + GOOD + GOOD_US_DATE + BAD + EXISTING)
    assert response.status_code == 200
    assert Patient.objects.filter(practice=practice_a).count() == 1  # nothing saved by the preview
    content = response.content.decode()
    assert "<strong>2</strong> patients are ready" in content
    token = response.context["token"]
    response = client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": token}, follow=True)
    assert Patient.objects.filter(practice=practice_a).count() == 3
    assert Patient.objects.get(chart_number="E1").first_name == "Original"
    ann = Patient.objects.get(chart_number="A100")
    assert (ann.email, ann.email_consent, ann.birth_sex) == ("ann@example.com", True, "F")
    text = " ".join(str(m) for m in response.context["messages"])
    assert "Imported 2 patients" in text and "Skipped 2 rows" in text


def test_a_confirm_cannot_be_replayed_or_forged(client_a, practice_a):
    response = upload(client_a, practice_a, HEADER + GOOD)
    token = response.context["token"]
    client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": token})
    client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": token})
    client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": "../../etc"})
    assert Patient.objects.filter(practice=practice_a).count() == 1


def test_it_reports_a_missing_chart_number_column(practice_a):
    report = imports.validate_rows(practice=practice_a, text="First Name,Last Name\nAnn,Lee\n")
    assert "chart number" in report.file_errors[0]


def test_it_reports_an_empty_file(practice_a):
    assert imports.validate_rows(practice=practice_a, text="").file_errors == ["The file is empty."]


def test_it_refuses_a_non_csv_upload(client_a, practice_a):
    response = upload(client_a, practice_a, "hello", name="patients.xlsx")
    assert "Upload a .csv file" in response.content.decode()


def test_it_cannot_import_into_another_practice(client_a, practice_b):
    response = upload(client_a, practice_b, HEADER + GOOD)
    assert response.context["form"].errors["practice"]
    assert not Patient.objects.filter(practice=practice_b).exists()


def test_viewers_cannot_import(client, practice_a):
    from patients.models import Role
    from tests.factories import staff_member

    client.force_login(staff_member(practice_a, Role.VIEWER))
    assert client.get(reverse("admin:patients_patient_import")).status_code == 403


def test_ten_thousand_rows_validate_and_import_with_few_queries(practice_a, django_assert_max_num_queries):
    rows = "".join(f"C{i},First{i},Last{i},1980-01-01,02139,p{i}@example.com,,F,yes,no\n" for i in range(10_000))
    with django_assert_max_num_queries(15):
        report = imports.validate_rows(practice=practice_a, text=HEADER + rows)
    assert len(report.valid_rows) == 10_000
    # Batched inserts: 10 on PostgreSQL; SQLite's variable limit makes smaller batches.
    fields = [f for f in Patient._meta.concrete_fields if not f.primary_key]
    batch = min(1000, connection.ops.bulk_batch_size(fields, report.valid_rows))
    with django_assert_max_num_queries(math.ceil(10_000 / batch) + 3):
        assert imports.import_valid_rows(report) == 10_000
    assert Patient.objects.filter(practice=practice_a).count() == 10_000


def test_previews_are_kept_outside_media_and_stale_ones_are_deleted(client_a, practice_a, settings, tmp_path):
    import datetime
    import os

    from django.utils import timezone

    from patients.admin import discard_stale_previews, preview_storage

    settings.VAR_DIR = tmp_path / "var"
    settings.MEDIA_ROOT = tmp_path / "media"
    response = upload(client_a, practice_a, HEADER + GOOD)
    token = response.context["token"]
    kept = settings.VAR_DIR / "imports" / f"{token}.csv"
    assert kept.exists() and not (tmp_path / "media").exists()
    # Patient data: readable by the app's own user only.
    assert (kept.stat().st_mode & 0o777, kept.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    storage = preview_storage()
    old = timezone.now() - datetime.timedelta(days=1, seconds=1)
    os.utime(kept, (old.timestamp(), old.timestamp()))
    assert discard_stale_previews(storage, now=timezone.now()) == 1
    assert not kept.exists()
