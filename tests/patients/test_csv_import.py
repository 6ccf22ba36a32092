import codecs
import math

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from patients import imports
from patients.audit import AuditAction, AuditEntry
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

HEADER = "Chart Number,First Name,Last Name,DOB,Zip,Email,Phone,Sex,Consent,Deceased\n"
GOOD = "A100,Ann,Lee,1980-05-17,02139,Ann@Example.com,555-0100,F,yes,no\n"
GOOD_US_DATE = "A101,Bo,Kim,05/17/1975,02139-4307,bo@example.com,,M,y,\n"
BAD = "A102,Cy,Ng,2999-01-01,123,not-an-email,,Q,maybe,no\n"
DUP_IN_FILE = "A100,Dee,Lee,1990-01-01,02139,dee@example.com,,F,yes,no\n"
EXISTING = "E1,Eve,Old,1990-01-01,02139,eve@example.com,,F,yes,no\n"


ACCENTED = "A200,José,Müller-Šťastná,1980-05-17,02139,jose@example.com,,M,yes,no\n"


def upload(client, practice, text, name="patients.csv"):
    content = text if isinstance(text, bytes) else text.encode()
    return client.post(
        reverse("admin:patients_patient_import"),
        {"practice": practice.pk, "file": SimpleUploadedFile(name, content, content_type="text/csv")},
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
    entry = AuditEntry.objects.get(practice=practice_a, action=AuditAction.CSV_IMPORT)
    assert (entry.actor.username, entry.details) == (response.wsgi_request.user.username, {"imported": 2, "skipped": 2, "without_mobile": 0, "email_consent": 2, "text_consent": 0})


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
        assert imports.import_valid_rows(report, practice=practice_a) == 10_000
    assert Patient.objects.filter(practice=practice_a).count() == 10_000


def test_previews_are_kept_outside_media_and_stale_ones_are_deleted(client_a, practice_a, settings, tmp_path):
    import datetime
    import os

    from django.utils import timezone

    from patients.admin.imports import discard_stale_previews, preview_storage

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


@pytest.mark.parametrize(
    "raw, encoding",
    [
        (codecs.BOM_UTF16_LE + (HEADER + ACCENTED).encode("utf-16-le"), "UTF-16"),
        (codecs.BOM_UTF16_BE + (HEADER + ACCENTED).encode("utf-16-be"), "UTF-16"),
        ((HEADER + ACCENTED).encode("utf-16-le"), "UTF-16"),  # no BOM: found by its NUL bytes
        (codecs.BOM_UTF8 + (HEADER + ACCENTED).encode(), "UTF-8"),
        ((HEADER + ACCENTED).encode(), "UTF-8"),
    ],
    ids=["utf-16-le-bom", "utf-16-be-bom", "utf-16-le-no-bom", "utf-8-bom", "utf-8"],
)
def test_it_reads_the_encodings_spreadsheets_save(practice_a, raw, encoding):
    report = imports.validate_rows(practice=practice_a, text=imports.decode(raw))
    assert (report.file_errors, report.encoding) == ([], encoding)
    [row] = report.valid_rows
    assert (row.values["chart_number"], row.patient.first_name, row.patient.last_name) == ("A200", "José", "Müller-Šťastná")


def test_it_reads_windows_1252_accented_names(practice_a):
    raw = (HEADER + "A201,Zoë,Peña,1980-05-17,02139,zoe@example.com,,F,yes,no\n").encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the file really is not UTF-8
    report = imports.validate_rows(practice=practice_a, text=imports.decode(raw))
    assert report.encoding == "Windows-1252"
    assert (report.valid_rows[0].patient.first_name, report.valid_rows[0].patient.last_name) == ("Zoë", "Peña")


def test_a_utf16_upload_is_previewed_and_imported(client_a, practice_a):
    raw = codecs.BOM_UTF16_LE + (HEADER + ACCENTED).encode("utf-16-le")
    response = upload(client_a, practice_a, raw)
    content = response.content.decode()
    assert "no column for" not in content
    assert "<strong>1</strong> patient is ready" in content and "Read as UTF-16 text" in content
    client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": response.context["token"]})
    assert Patient.objects.get(practice=practice_a, chart_number="A200").first_name == "José"


@pytest.mark.parametrize("delimiter, words", [(";", "semicolons"), ("\t", "tabs"), (",", "commas")])
def test_it_detects_the_delimiter_from_the_header(practice_a, delimiter, words):
    # Excel saves with semicolons in locales whose decimal mark is a comma; "Unicode Text" uses tabs.
    text = (HEADER + GOOD).replace(",", delimiter)
    report = imports.validate_rows(practice=practice_a, text=text)
    assert (report.file_errors, report.separated_by) == ([], words)
    assert [row.values["chart_number"] for row in report.valid_rows] == ["A100"]


def test_a_semicolon_file_may_hold_commas_in_values(practice_a):
    text = 'Chart Number;First Name;Last Name;Phone\r\nA1;Ann;"Lee, Jr.";555-0100\r\n'
    report = imports.validate_rows(practice=practice_a, text=text)
    assert report.valid_rows[0].patient.last_name == "Lee, Jr."


def test_old_mac_line_endings_are_read(practice_a):
    report = imports.validate_rows(practice=practice_a, text=(HEADER + GOOD + GOOD_US_DATE).replace("\n", "\r"))
    assert [row.line for row in report.valid_rows] == [2, 3]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (HEADER.encode() + b"A1,Ann,Lee\x81,1980-05-17\n", "tried UTF-8, UTF-16 and Windows-1252"),
        (b"A1,\x00\x00\x00,\xff\x10\x00x\x00\n" * 20, "tried UTF-8, UTF-16 and Windows-1252"),
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "spreadsheet workbook, not a CSV file"),
    ],
    ids=["undefined-in-cp1252", "binary", "xlsx"],
)
def test_an_unreadable_file_gets_a_file_error_naming_the_encodings(practice_a, raw, expected):
    report = imports.validate_rows(practice=practice_a, text=imports.decode(raw))
    assert not report.rows
    [error] = report.file_errors
    assert expected in error and "CSV UTF-8" in error


def test_a_bad_date_names_the_value_and_every_accepted_format(practice_a):
    report = imports.validate_rows(practice=practice_a, text=HEADER + GOOD.replace("1980-05-17", "31/02/1980"))
    [(column, message)] = report.invalid_rows[0].errors
    assert column == "date_of_birth"
    assert message == "“31/02/1980” is not a date; use YYYY-MM-DD, MM/DD/YYYY, MM/DD/YY or MM-DD-YYYY (e.g. 1980-05-17)."
    assert len(imports.DATE_FORMATS) == 4  # a new format must be named in the message too


def test_every_row_error_shows_the_value_and_the_fix(practice_a):
    report = imports.validate_rows(practice=practice_a, text=HEADER + BAD)
    messages = dict(report.invalid_rows[0].errors)
    assert messages["birth_sex"] == "“Q” is not a birth sex; use F, M or U (Female, Male or Unknown), or blank."
    assert messages["email_consent"] == (
        "“maybe” is not yes or no; use yes, y, true, t, 1 or x for yes; no, n, false, f, 0 or blank for no."
    )
    assert messages["email"] == "“not-an-email” is not an email address; check it for typos."
    assert messages["zip_code"].startswith("“123”: Enter a 5-digit ZIP code")
    assert messages["date_of_birth"] == "“2999-01-01”: Date of birth cannot be in the future."


def test_long_values_are_truncated_in_messages(practice_a):
    long_email = "x" * 300 + "@@example.com"
    report = imports.validate_rows(practice=practice_a, text=HEADER + GOOD.replace("Ann@Example.com", long_email))
    message = dict(report.invalid_rows[0].errors)["email"]
    assert message.startswith("“" + "x" * 39 + "…”")


def test_the_columns_needed_for_an_invitation_match_eligibility():
    from invitations.eligibility import RULES_BY_CODE

    missing_field_rules = {
        code.removeprefix("missing_") for code, rule in RULES_BY_CODE.items() if code.startswith("missing_") and rule.channel != "text"
    }
    assert {column for column in imports.COLUMNS if column.for_invitation} == missing_field_rules | {"email_consent"}
    assert "no_consent" in RULES_BY_CODE
