"""Parents, guardians and caregivers through the CSV import: forgiving headers and relationship
words, the practice's age bands (a child's parent full, a teenager's limited, an adult's caregiver
only with consent, a court guardian with the order), an error on the row's column for every
problem, siblings sharing one guardian, a guardian already on file reused, audited, and a constant
number of queries per 1,000 rows."""

import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from patients import imports
from patients.audit import AuditAction, AuditEntry
from patients.models import Patient
from patients.models.representatives import (
    AccessLevel,
    AccessStatus,
    Relationship,
    Representative,
    RepresentativeAccess,
)
from tests.clock import NOW
from tests.factories import UserFactory
from tests.family_factories import RepresentativeFactory
from tests.patients.test_csv_import import upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

CHILD_DOB, TEEN_DOB, ADULT_DOB = "2018-05-17", "2011-05-17", "1950-05-17"  # 7, 14 and 75 on 2 March 2026
HEADER = "Chart,First Name,Last Name,DOB,Guardian Name,Guardian Email,Guardian Mobile,Guardian Texts OK,Relationship,Guardian Consent,Court Order\n"


def line(chart, dob=CHILD_DOB, name="Maria Garcia", email="maria@family.example", mobile="", texts="", relationship="",
         consent="", court="", first="Sofia"):
    return f'{chart},{first},Garcia,{dob},{name},{email},"{mobile}",{texts},{relationship},{consent},{court}\n'


def read_guardians(practice, *lines, header=HEADER):
    report = imports.validate_rows(practice=practice, text=header + "".join(lines), now=NOW)
    assert not report.file_errors
    return report


def row_errors(report, chart):
    [row] = [row for row in report.rows if row.values["chart_number"] == chart]
    return dict(row.errors)


@pytest.mark.parametrize(
    "header, cells",
    [
        ("Chart,DOB,Guardian Name,Guardian Email,Relationship", "K1,2018-05-17,Maria Garcia,maria@family.example,Mother"),
        ("Chart,DOB,Parent Name,Parent Email,Guardian Relationship", "K1,2018-05-17,\"Garcia, Maria\",maria@family.example,father"),
        ("Chart,DOB,Guardian First Name,Guardian Last Name,guardian-email,relationship to patient",
         "K1,2018-05-17,Maria,Garcia,MARIA@Family.example,Guardian"),
        ("chart,dob,PARENT/GUARDIAN,Guardian Cell,Guardian Texts OK", "K1,2018-05-17,Maria Garcia,(617) 555-0199,yes"),
        ("Chart,DOB,Parent or Guardian,Parent Cell,Parent Text Consent,Relationship", "K1,2018-05-17,Maria Garcia,617.555.0199,y,parent or guardian"),
    ],
    ids=["guardian-name", "parent-last-comma-first", "two-name-columns", "cell-and-texts", "parent-cell"],
)
def test_it_reads_the_guardian_columns_under_the_headers_practices_use(practice_a, header, cells):
    [row] = read_guardians(practice_a, cells + "\n", header=header + "\n").valid_rows
    guardian = row.guardian
    assert (guardian.person.first_name, guardian.person.last_name) == ("Maria", "Garcia")
    assert guardian.person.email in ("maria@family.example", "")
    assert guardian.person.mobile_phone in ("+16175550199", "")
    assert guardian.person.sms_consent == (guardian.person.mobile_phone != "")
    assert (guardian.relationship, guardian.level, guardian.ends_at_majority) == (Relationship.PARENT, AccessLevel.FULL, True)


@pytest.mark.parametrize(
    "written, relationship",
    [("Mom", Relationship.PARENT), ("step-father", Relationship.PARENT), ("Legal guardian", Relationship.PARENT),
     ("Court-appointed guardian", Relationship.COURT_GUARDIAN), ("COURT GUARDIAN", Relationship.COURT_GUARDIAN),
     ("carer", Relationship.CAREGIVER), ("Adult caregiver", Relationship.CAREGIVER)],
)
def test_relationships_are_read_in_the_usual_words(practice_a, written, relationship):
    [row] = read_guardians(practice_a, line("K1", relationship=written, court="Probate court 2025-123")).valid_rows
    assert row.guardian.relationship == relationship


def test_the_age_bands_decide_the_level_and_the_ending_as_the_patient_page_does(practice_a):
    report = read_guardians(
        practice_a,
        line("CHILD", dob=CHILD_DOB),
        line("TEEN", dob=TEEN_DOB, name="Ana Garcia", email="ana@family.example"),
        line("ADULT", dob=ADULT_DOB, name="Luis Garcia", email="luis@family.example", relationship="caregiver", consent="Signed form 3/1/2026"),
        line("SAID_YES", dob=ADULT_DOB, name="Eva Garcia", email="eva@family.example", relationship="caregiver", consent="yes"),
        line("COURT", dob=ADULT_DOB, name="Ray Garcia", email="ray@family.example", relationship="court guardian", court="Order 7/2024"),
        line("COURT_CHILD", dob=CHILD_DOB, name="Ida Garcia", email="ida@family.example", relationship="court guardian", court="Order 8/2024"),
    )
    assert not report.invalid_rows
    got = {
        row.values["chart_number"]: (row.guardian.level, row.guardian.ends_at_majority, row.guardian.patient_consent, row.guardian.court_document)
        for row in report.valid_rows
    }
    assert got == {
        "CHILD": (AccessLevel.FULL, True, "", ""),
        "TEEN": (AccessLevel.LIMITED, True, "", ""),
        "ADULT": (AccessLevel.FULL, False, "Signed form 3/1/2026", ""),
        "SAID_YES": (AccessLevel.FULL, False, "Recorded as yes in the CSV import of 2026-03-02", ""),
        "COURT": (AccessLevel.FULL, False, "", "Order 7/2024"),
        "COURT_CHILD": (AccessLevel.FULL, False, "", "Order 8/2024"),
    }


def test_every_problem_is_an_error_on_its_column_and_the_row_is_skipped(practice_a):
    report = read_guardians(
        practice_a,
        line("BAD_EMAIL", email="maria@family"),
        line("BAD_MOBILE", email="", mobile="555-0123"),
        line("WHO", relationship="neighbour"),
        line("ADULT", dob=ADULT_DOB, relationship="caregiver"),
        line("ADULT_NO", dob=ADULT_DOB, relationship="caregiver", consent="no"),
        line("ADULT_BLANK", dob=ADULT_DOB),
        line("COURT", relationship="court guardian"),
        line("NO_CONTACT", email=""),
        line("ONE_NAME", name="Maria"),
        line("NO_DOB", dob=""),
        line("TEXTS", texts="perhaps", mobile="617-555-0100"),
        line("GOOD"),
    )
    assert [row.values["chart_number"] for row in report.valid_rows] == ["GOOD"]
    assert row_errors(report, "BAD_EMAIL") == {"guardian_email": "“maria@family” is not an email address; check it for typos."}
    assert row_errors(report, "BAD_MOBILE") == {
        "guardian_mobile": "“555-0123” has no area code: enter the whole number (US numbers have 10 digits).",
    }
    assert row_errors(report, "WHO")["guardian_relationship"].startswith("“neighbour” is not a relationship the portal knows; use parent")
    for chart in ("ADULT", "ADULT_NO"):
        assert row_errors(report, chart)["guardian_consent"].startswith("The patient is an adult: a caregiver needs the patient's consent.")
    assert "write the relationship" in row_errors(report, "ADULT_BLANK")["guardian_relationship"]
    assert row_errors(report, "COURT") == {
        "guardian_court_order": "A court guardian needs the court order (court, number, date) in the court order column.",
    }
    assert row_errors(report, "NO_CONTACT") == {
        "guardian_email": "The guardian needs an email address or a mobile number, to be invited.",
    }
    assert "first and a last name" in row_errors(report, "ONE_NAME")["guardian_name"]
    assert row_errors(report, "NO_DOB") == {"date_of_birth": "A guardian needs the patient's date of birth: it decides who may act for them."}
    assert row_errors(report, "TEXTS")["guardian_sms_consent"].startswith("“perhaps” is not yes or no")


def test_a_practice_without_family_access_refuses_guardians_and_says_how(practice_a):
    practice_a.family_access_enabled = False
    practice_a.save()
    report = read_guardians(practice_a, line("K1"))
    assert "Family and caregiver access is turned off" in row_errors(report, "K1")["guardian_name"]
    assert not report.valid_rows


def test_rows_without_guardian_columns_or_values_have_no_guardian(practice_a):
    report = read_guardians(practice_a, "K1,Sofia,Garcia,2018-05-17,,,,,,,\n")
    assert report.valid_rows[0].guardian is None and not report.guardians
    plain = imports.validate_rows(practice=practice_a, text="Chart,DOB\nK2,2018-05-17\n", now=NOW)
    assert plain.valid_rows[0].guardian is None


def test_siblings_with_the_same_guardian_share_one_person(practice_a):
    report = read_guardians(
        practice_a,
        line("K1", first="Sofia"),
        line("K2", first="Lucas", name="MARIA  garcia", email="Maria@Family.example", mobile="617-555-0150", texts="yes"),
        line("K3", first="Ines", name="Maria Garcia", email="", mobile="(617) 555-0150"),  # the same person by mobile
        line("K4", first="Pablo", name="Maria Garcia", email="other.maria@family.example"),  # a namesake: another person
        line("K5", first="Nora", name="Maria Garcia", email="maria@family.example", mobile="617-555-0999"),  # a clash
    )
    first = report.rows[0].guardian.person
    assert [row.guardian.person is first for row in report.rows[:3]] == [True, True, True]
    assert (first.email, first.mobile_phone, first.sms_consent, first.also_on) == ("maria@family.example", "+16175550150", True, [3, 4])
    assert report.rows[3].guardian.person is not first
    assert row_errors(report, "K5") == {
        "guardian_mobile": "The guardian on line 2 has the same name but another mobile number; write the same one on both lines "
                           "if they are one person.",
    }
    assert len(report.guardians) == 2


def test_a_guardian_already_on_file_is_linked_not_duplicated_and_only_in_the_practice(practice_a, practice_b):
    on_file = RepresentativeFactory(practice=practice_a, first_name="Maria", last_name="Garcia", email="maria@family.example",
                                    portal_user=UserFactory())
    RepresentativeFactory(practice=practice_a, first_name="Maria", last_name="Garcia", email="maria@family.example")  # no login
    RepresentativeFactory(practice=practice_b, first_name="Ana", last_name="Garcia", email="ana@family.example")
    report = read_guardians(practice_a, line("K1"), line("K2", name="Ana Garcia", email="ana@family.example"))
    assert report.rows[0].guardian.person.existing == on_file  # the one with a login
    assert report.rows[1].guardian.person.existing is None  # another practice's representative is not this practice's

    imports.import_valid_rows(report, practice=practice_a, now=NOW)
    assert RepresentativeAccess.objects.get(patient__chart_number="K1").representative == on_file
    assert Representative.objects.filter(practice=practice_a).count() == 3
    on_file.refresh_from_db()
    assert on_file.email == "maria@family.example"  # details on file are never changed


def test_the_admin_import_previews_saves_and_audits_the_guardians(client_a, practice_a, front_desk_a):
    text = HEADER + line("K1", first="Sofia") + line("K2", first="Lucas", mobile="617-555-0150", texts="yes") + line(
        "K3", first="Mateo", dob=TEEN_DOB, name="Ana Ruiz", email="ana@family.example") + line("K4", email="bad@")
    response = upload(client_a, practice_a, text)
    page = " ".join(response.content.decode().split())
    assert "<strong>3</strong> of them with a parent, guardian or caregiver: <strong>2</strong> people" in page
    assert "Maria Garcia (parent or guardian, full access)" in page and "as on line 2" in page
    assert "Ana Ruiz (parent or guardian, limited access)" in page
    assert "“bad@” is not an email address" in page
    assert not Representative.objects.exists()  # the preview saves nothing

    response = client_a.post(reverse("admin:patients_patient_import"), {"confirm": "1", "token": response.context["token"]}, follow=True)
    message = " ".join(str(m) for m in response.context["messages"])
    assert "3 of them with a parent, guardian or caregiver (2 people), not invited yet" in message
    maria = Representative.objects.get(first_name="Maria")
    assert (maria.email, maria.mobile_phone, maria.sms_consent, maria.created_by) == (
        "maria@family.example", "+16175550150", True, front_desk_a)
    accesses = RepresentativeAccess.objects.filter(practice=practice_a).select_related("patient", "representative")
    assert sorted((a.patient.first_name, a.representative.first_name, a.level, a.status, a.granted_by_id) for a in accesses) == [
        ("Lucas", "Maria", AccessLevel.FULL, AccessStatus.INVITED, front_desk_a.pk),
        ("Mateo", "Ana", AccessLevel.LIMITED, AccessStatus.INVITED, front_desk_a.pk),
        ("Sofia", "Maria", AccessLevel.FULL, AccessStatus.INVITED, front_desk_a.pk),
    ]
    entry = AuditEntry.objects.get(practice=practice_a, action=AuditAction.CSV_IMPORT)
    imported = Patient.objects.filter(practice=practice_a)  # the consents the file gave are counted too
    assert entry.details == {
        "imported": 3, "skipped": 1, "without_mobile": 0, "representatives_new": 2, "representative_accesses": 3,
        "email_consent": imported.filter(email_consent=True).count(), "text_consent": imported.filter(sms_consent=True).count(),
    }
    grants = AuditEntry.objects.filter(practice=practice_a, action=AuditAction.REPRESENTATIVE_GRANTED)
    assert sorted(grants.values_list("patient__chart_number", flat=True)) == ["K1", "K2", "K3"]
    assert all("@" not in grant.summary and "555" not in grant.summary for grant in grants)  # names, never contact details
    assert grants.get(patient__chart_number="K3").summary == "Gave Ana R. limited access as parent or guardian (CSV import)"


def test_the_import_form_lists_the_guardian_columns(client_a):
    page = client_a.get(reverse("admin:patients_patient_import")).content.decode()
    assert "Parents, guardians and caregivers" in page
    for column in imports.GUARDIAN_COLUMNS:
        assert f"<code>{column}</code>" in page


@pytest.mark.parametrize("families", [50, 1_000])
def test_guardians_cost_a_constant_number_of_queries_per_thousand_rows(practice_a, front_desk_a, families, django_assert_max_num_queries):
    # Two children per family, every family's parent new except one already on file.
    RepresentativeFactory(practice=practice_a, first_name="Parent0", last_name="Garcia", email="parent0@family.example")
    lines = [
        line(f"F{n}-{child}", first=f"Child{child}", name=f"Parent{n} Garcia", email=f"parent{n}@family.example",
             mobile=f"617-555-{n % 10_000:04d}", texts="yes")
        for n in range(families) for child in (1, 2)
    ]
    with CaptureQueriesContext(connection) as validating:
        report = read_guardians(practice_a, *lines)
    assert len(report.valid_rows) == 2 * families and len(report.guardians) == families
    # The chart numbers taken and the representatives on file: one query each per 1,000.
    assert len(validating) == math.ceil(2 * families / 1000) + math.ceil(families / 1000)
    fields = [f for f in Patient._meta.concrete_fields if not f.primary_key]
    batch = min(1000, connection.ops.bulk_batch_size(fields, report.valid_rows))
    rows = 2 * families
    # Patients, representatives, accesses and the grants' audit entries in batches, the import's audit entry.
    with django_assert_max_num_queries(4 * math.ceil(rows / batch) + 3):
        imports.import_valid_rows(report, practice=practice_a, actor=front_desk_a, now=NOW)
    assert RepresentativeAccess.objects.filter(practice=practice_a).count() == rows
    assert Representative.objects.filter(practice=practice_a).count() == families
