"""Mobile numbers and text consent through the CSV import: every usual way of writing a number is
read in the practice's country and stored in E.164; a number that cannot be read leaves the patient
imported without it, with the exact problem in the preview; text consent is recorded with the
import's time and the importer."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from invitations.eligibility import NEEDED_FOR_TEXT
from patients import imports
from patients.audit import AuditAction, AuditEntry
from patients.models import Patient
from tests.clock import NOW
from tests.factories import PracticeFactory
from tests.patients.test_csv_import import upload

pytestmark = pytest.mark.django_db

HEADER = "Chart Number,First Name,Last Name,Email,Mobile,Text Consent\n"


def row(mobile: str, consent: str = "yes", chart: str = "M1") -> str:
    return f'{chart},Ann,Lee,ann@example.com,"{mobile}",{consent}\n'


def read_texts(practice, *lines: str, header: str = HEADER) -> imports.ImportReport:
    report = imports.validate_rows(practice=practice, text=header + "".join(lines))
    assert not report.file_errors
    return report


@pytest.mark.parametrize(
    "written",
    ["(617) 555-0123", "617.555.0123", "617-555-0123", "617 555 0123", "6175550123", "+1 617 555 0123",
     "16175550123", "1-617-555-0123", "+1 (617) 555-0123"],
)
def test_it_reads_the_usual_ways_of_writing_a_us_number(practice_a, written):
    [result] = read_texts(practice_a, row(written)).valid_rows
    assert (result.patient.mobile_phone, result.shown_mobile, result.warnings) == ("+16175550123", "(617) 555-0123", [])


@pytest.mark.parametrize(
    "written, message",
    [
        ("555-0123", "“555-0123” has no area code: enter the whole number (US numbers have 10 digits)."),
        ("617555012", "“617555012” is not a valid US phone number: it has 9 digits; US numbers have 10."),
        ("61755501234", "“61755501234” is not a valid US phone number: it has 11 digits; US numbers have 10."),
        ("123 555 0123", "“123 555 0123” is not a valid US phone number: check the area code and the digits."),
        ("617 555 0123 x12", "“617 555 0123 x12” has an extension: enter a mobile number without one."),
        ("+999 123 4567", "“+999 123 4567” does not start with a known country code."),
        ("call me", "“call me” is not a phone number: use digits, with spaces, dashes, dots or brackets if you like."),
        ("1" * 50, "“" + "1" * 39 + "…”: This is too long to be a phone number."),
    ],
    ids=["no-area-code", "too-short", "too-long", "bad-area-code", "extension", "country-code", "words", "huge"],
)
def test_a_bad_number_is_left_out_with_what_is_wrong_and_the_patient_is_still_imported(practice_a, written, message):
    report = read_texts(practice_a, row(written))
    [result] = report.valid_rows
    assert result.warnings == [("mobile_phone", message)]
    assert result.notes == [("mobile phone", message)]
    assert report.rows_without_mobile == [result]
    assert (result.patient.mobile_phone, result.shown_mobile, result.patient.sms_consent) == ("", "", True)


def test_a_skipped_row_lists_its_mobile_problem_with_its_errors(practice_a):
    report = read_texts(practice_a, ',Ann,Lee,not-an-email,555-0123,yes\n')
    [result] = report.invalid_rows
    columns = [column for column, _ in result.problems]
    assert columns == ["email", "chart number", "mobile phone"]
    assert report.rows_without_mobile == []  # it is not imported at all


def test_a_practice_in_great_britain_reads_its_own_local_numbers(practice_a):
    practice = PracticeFactory(country="GB")
    report = read_texts(
        practice,
        row("07400 123456", chart="G1"), row("+44 7400 123456", chart="G2"), row("0044 7400 123456", chart="G3"),
        row("+1 617 555 0123", chart="G4"), row("(617) 555-0123", chart="G5"), row("07700 900123", chart="G6"),
    )
    read_as = {r.values["chart_number"]: (r.patient.mobile_phone, r.shown_mobile) for r in report.valid_rows}
    assert read_as == {
        "G1": ("+447400123456", "07400 123456"),
        "G2": ("+447400123456", "07400 123456"),
        "G3": ("+447400123456", "07400 123456"),
        "G4": ("+16175550123", "+1 617-555-0123"),  # abroad: shown in international form
        "G5": ("", ""),
        "G6": ("", ""),
    }
    warnings = {r.values["chart_number"]: r.warnings for r in report.rows_without_mobile}
    assert warnings == {
        # Without +1 a US number is read as British, and is not a British number.
        "G5": [("mobile_phone", "“(617) 555-0123” is not a valid GB phone number: check the area code and the digits.")],
        # Ofcom's range for drama (07700 900000-900999) is not a real number: texts could never reach it.
        "G6": [("mobile_phone", "“07700 900123” is not a valid GB phone number: check the area code and the digits.")],
    }
    # The same file in a US practice: local numbers are American.
    assert read_texts(practice_a, row("07400 123456")).valid_rows[0].patient.mobile_phone == ""


@pytest.mark.parametrize(
    "header",
    ["mobile_phone,sms_consent", "Mobile,Text Consent", "Cell,SMS Consent", "Cell Phone,Consents to Texts",
     "Mobile Number,Texts OK", "CELL-NUMBER,text_consent"],
)
def test_the_usual_headers_are_understood(practice_a, header):
    [result] = read_texts(practice_a, "M1,617.555.0123,yes\n", header=f"Chart Number,{header}\n").valid_rows
    assert (result.patient.mobile_phone, result.patient.sms_consent) == ("+16175550123", True)


def test_a_phone_column_is_kept_as_written_and_is_not_the_mobile(practice_a):
    [result] = read_texts(practice_a, "M1,555-0100,617.555.0123\n", header="Chart Number,Phone,Mobile\n").valid_rows
    assert (result.patient.phone, result.patient.mobile_phone, result.warnings) == ("555-0100", "+16175550123", [])


@pytest.mark.parametrize("word, consent", [("yes", True), ("Y", True), ("x", True), ("1", True), ("no", False), ("", False)])
def test_text_consent_reads_yes_and_no_like_email_consent(practice_a, word, consent):
    [result] = read_texts(practice_a, row("617.555.0123", consent=word)).valid_rows
    assert result.patient.sms_consent is consent


def test_a_text_consent_that_is_neither_yes_nor_no_skips_the_row(practice_a):
    [result] = read_texts(practice_a, row("617.555.0123", consent="maybe")).invalid_rows
    assert result.errors == [
        ("sms_consent", "“maybe” is not yes or no; use yes, y, true, t, 1 or x for yes; no, n, false, f, 0 or blank for no.")
    ]


def test_the_import_records_text_consent_with_its_time_and_the_importer(client_a, practice_a, front_desk_a, frozen):
    response = upload(
        client_a, practice_a,
        HEADER + row("617.555.0123", chart="C1") + row("617.555.0124", consent="no", chart="C2")
        + row("555-0125", chart="C3") + row("", chart="C4"),
    )
    assert response.status_code == 200
    response = client_a.post(
        reverse("admin:patients_patient_import"), {"confirm": "1", "token": response.context["token"]}, follow=True,
    )
    patients = {
        p.chart_number: (p.mobile_phone, p.sms_consent, p.sms_consent_changed_at, p.sms_consent_changed_by)
        for p in Patient.objects.filter(practice=practice_a)
    }
    assert patients == {
        "C1": ("+16175550123", True, NOW, front_desk_a),
        "C2": ("+16175550124", False, None, None),
        "C3": ("", True, NOW, front_desk_a),  # consent stands; the number is added on the chart later
        "C4": ("", True, NOW, front_desk_a),
    }
    [message] = [str(m) for m in response.context["messages"]]
    assert message == (
        "Imported 4 patients into Practice A. 1 of them without their mobile number, which could not be read "
        "(line 4); add it on their charts."
    )
    entry = AuditEntry.objects.get(practice=practice_a, action=AuditAction.CSV_IMPORT)
    # The consents the file gave are in the audit trail too (counts: never patient data).
    assert entry.details == {"imported": 4, "skipped": 0, "without_mobile": 1, "email_consent": 0, "text_consent": 3}
    assert entry.summary == (
        "Imported 4 patients (0 rows skipped, 1 without their unreadable mobile number); consent to email 0, to texts 3"
    )


def test_the_confirm_message_names_one_line_or_several(client_a, practice_a):
    lines = row("555-0100", chart="L2") + row("617.555.0123", consent="maybe", chart="L3") + row("555-0104", chart="L4")
    response = upload(client_a, practice_a, HEADER + lines)
    response = client_a.post(
        reverse("admin:patients_patient_import"), {"confirm": "1", "token": response.context["token"]}, follow=True,
    )
    [message] = [str(m) for m in response.context["messages"]]
    assert message == (
        "Imported 2 patients into Practice A. 2 of them without their mobile number, which could not be read "
        "(lines 2, 4); add it on their charts. Skipped 1 row with errors (line 3)."
    )


def test_consent_is_recorded_at_the_time_the_caller_gives(practice_a, front_desk_a):
    report = read_texts(practice_a, row("617.555.0123"))
    imports.import_valid_rows(report, practice=practice_a, actor=front_desk_a, now=NOW)
    patient = Patient.objects.get(practice=practice_a)
    assert (patient.sms_consent_changed_at, patient.sms_consent_changed_by) == (NOW, front_desk_a)


def test_the_preview_says_which_numbers_are_left_out_and_why(client_a, practice_a):
    response = upload(client_a, practice_a, HEADER + row("(617) 555-0123", chart="P1") + row("555-0123", chart="P2"))
    content = response.content.decode()
    assert "(<strong>1</strong> of them without the mobile number, which could not be read)" in content
    assert "Will be imported without their mobile number: 1 patient" in content
    assert "fix the numbers in\n    the file and upload it again now, before importing" in content
    left_out = content[content.index("Will be imported without"):content.index("Will be imported: ")]
    assert "P2" in left_out and "P1" not in left_out
    assert "“555-0123” has no area code: enter the whole number (US numbers have 10 digits)." in left_out
    imported = content[content.index("Will be imported: "):]
    assert "<th>Mobile</th><th>Texts OK</th>" in imported
    assert "<td>(617) 555-0123</td>\n          <td>Yes</td>" in imported
    assert "Import 2 patients" in content


def test_a_preview_without_mobile_problems_says_nothing_about_them(client_a, practice_a):
    content = upload(client_a, practice_a, HEADER + row("(617) 555-0123")).content.decode()
    assert "without the mobile number" not in content and "without their mobile number" not in content


def test_the_form_lists_the_text_columns(client_a):
    content = client_a.get(reverse("admin:patients_patient_import")).content.decode()
    assert "<td><code>mobile_phone</code></td>\n      <td>Mobile, Mobile Number, Cell, Cell Phone, Cell Number</td>" in content
    assert "<td><code>sms_consent</code></td>\n      <td>Text Consent, Consents to Texts, Texts OK</td>" in content
    assert "(617) 555-0123 or 617.555.0123 in the US" in content
    assert "A number that cannot be read is left out and the rest of the row is imported" in content
    assert content.count("<td>For texts</td>") == 2


def test_the_columns_needed_for_a_text_match_eligibility():
    assert tuple(column for column in imports.COLUMNS if column.for_text) == NEEDED_FOR_TEXT


@pytest.mark.parametrize("size", [10, 100])
def test_numbers_and_consent_cost_no_query_per_row(practice_a, front_desk_a, size, django_assert_max_num_queries):
    lines = [row(f"617.555.{i % 100:04d}", chart=f"Q{i}") for i in range(size)]
    with CaptureQueriesContext(connection) as validating:
        report = read_texts(practice_a, *lines)
    assert len(validating) == 1  # the chart numbers already taken, whatever the file's size
    assert len(report.valid_rows) == size and not report.rows_without_mobile
    fields = [f for f in Patient._meta.concrete_fields if not f.primary_key]
    batch = min(1000, connection.ops.bulk_batch_size(fields, report.valid_rows))
    with django_assert_max_num_queries(math.ceil(size / batch) + 3):
        imports.import_valid_rows(report, practice=practice_a, actor=front_desk_a, now=NOW)
    assert Patient.objects.filter(practice=practice_a, sms_consent_changed_by=front_desk_a, sms_consent_changed_at=NOW).count() == size
