"""Finding a patient the way the front desk types: names in any case and without accents, phone
numbers in any format, chart numbers with or without their prefix, dates of birth as typed."""

import datetime

import pytest
from django.db import connection
from django.urls import reverse

from patients import imports
from patients.models import Patient, Practice, born_in_past_century, parse_date_of_birth
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 12, 7)


@pytest.fixture
def charts(practice_a, practice_b):
    return {
        "garcia": PatientFactory(practice=practice_a, first_name="María", last_name="García", chart_number="01-0000005",
                                 mobile_phone="+16175550187", date_of_birth=datetime.date(1945, 3, 15)),
        "oconnor": PatientFactory(practice=practice_a, first_name="Seán", last_name="O'Connor", chart_number="01-0000050",
                                  phone="(617) 555-0142"),
        "compound": PatientFactory(practice=practice_a, first_name="Ana", last_name="Smith-Jones", chart_number="CSV-00042"),
        "two_surnames": PatientFactory(practice=practice_a, first_name="José", last_name="Pérez López", chart_number="77"),
        "other_practice": PatientFactory(practice=practice_b, first_name="María", last_name="Garcia", chart_number="01-0000006",
                                         mobile_phone="+16175550187"),
    }


def found(term: str, practice) -> set[str]:
    return set(Patient.objects.filter(practice=practice).search(term).values_list("last_name", flat=True))


@pytest.mark.parametrize("term", ["Garcia", "garcia", "GARCÍA", "garc", "García", "  garcia  "])
def test_it_finds_a_name_in_any_case_with_or_without_accents(charts, practice_a, term):
    assert found(term, practice_a) == {"García"}


@pytest.mark.parametrize("term", ["oconnor", "O'Connor", "o’connor", "O Connor", "oc"])
def test_it_finds_a_name_without_its_punctuation(charts, practice_a, term):
    assert found(term, practice_a) == {"O'Connor"}


@pytest.mark.parametrize("term,name", [
    ("jones", "Smith-Jones"), ("smith-jones", "Smith-Jones"), ("smith jones", "Smith-Jones"), ("lopez", "Pérez López"),
    ("perez lopez", "Pérez López"),
])
def test_it_finds_either_part_of_a_compound_last_name(charts, practice_a, term, name):
    assert found(term, practice_a) == {name}


@pytest.mark.parametrize("term", ["maria garcia", "Garcia, Maria", "mar garc", "garcia maria"])
def test_it_finds_a_first_and_last_name_in_either_order(charts, practice_a, term):
    assert found(term, practice_a) == {"García"}


def test_a_first_name_alone_finds_too_and_a_wrong_pair_finds_nobody(charts, practice_a):
    assert found("sean", practice_a) == {"O'Connor"}
    assert found("maria oconnor", practice_a) == set()


@pytest.mark.parametrize("term", ["617-555-0187", "6175550187", "(617) 555-0187", "+1 617 555 0187", "1-617-555-0187",
                                  "617.555.0187"])
def test_it_finds_a_mobile_number_typed_in_any_format(charts, practice_a, term):
    assert found(term, practice_a) == {"García"}


def test_it_finds_the_chart_phone_kept_as_written(charts, practice_a):
    assert found("617.555.0142", practice_a) == {"O'Connor"}
    assert found("6175550142", practice_a) == {"O'Connor"}


@pytest.mark.parametrize("term,name", [
    ("5", "García"), ("0000005", "García"), ("01-0000005", "García"), ("010000005", "García"),
    ("50", "O'Connor"), ("42", "Smith-Jones"), ("csv-00042", "Smith-Jones"), ("CSV-", "Smith-Jones"),
])
def test_it_finds_a_chart_number_with_or_without_its_prefix_and_zeros(charts, practice_a, term, name):
    assert found(term, practice_a) == {name}


def test_a_charts_number_is_matched_whole_without_its_zeros(charts, practice_a):
    assert found("000005", practice_a) == {"García"}  # 5, not 50
    assert found("01-00000", practice_a) == {"García", "O'Connor"}  # the start of both charts


@pytest.mark.parametrize("term", ["03/15/1945", "3/15/1945", "3/15/45", "03-15-1945", "1945-03-15", "3.15.45"])
def test_it_finds_a_date_of_birth_as_typed_at_a_desk(charts, practice_a, term):
    assert found(term, practice_a) == {"García"}


def test_a_two_digit_year_is_never_in_the_future():
    assert parse_date_of_birth("3/15/45", today=TODAY) == datetime.date(1945, 3, 15)
    assert parse_date_of_birth("3/15/26", today=TODAY) == datetime.date(2026, 3, 15)
    assert parse_date_of_birth("12/8/26", today=TODAY) == datetime.date(1926, 12, 8)  # tomorrow's date, a century ago
    assert born_in_past_century(datetime.date(2048, 2, 29), today=TODAY) == datetime.date(1948, 2, 29)
    assert parse_date_of_birth("Garcia") is None and parse_date_of_birth("13/45/1990") is None


def test_an_email_is_found_by_its_start(charts, practice_a):
    email = charts["garcia"].email
    assert found(email.upper(), practice_a) == {"García"}


def test_the_keys_follow_every_way_a_chart_changes(practice_a):
    patient = PatientFactory(practice=practice_a, last_name="Nuñez", chart_number="X-0009")
    assert found("nunez", practice_a) == {"Nuñez"}
    patient.last_name = "Ibáñez"
    patient.save(update_fields=["last_name"])
    assert found("ibanez", practice_a) == {"Ibáñez"} and found("nunez", practice_a) == set()
    Patient.objects.filter(pk=patient.pk).update(mobile_phone="+16175550199", chart_number="Y-7")
    assert found("617-555-0199", practice_a) == {"Ibáñez"} and found("7", practice_a) == {"Ibáñez"}
    patient.refresh_from_db()
    patient.first_name = "Zoë"
    Patient.objects.bulk_update([patient], ["first_name"])
    assert found("zoe ibanez", practice_a) == {"Ibáñez"}
    made = Patient.objects.bulk_create([Patient(practice=practice_a, chart_number="B-1", last_name="Çelik")])
    assert made[0].search_last == "celik" and found("celik", practice_a) == {"Çelik"}


def test_the_csv_import_writes_the_keys(practice_a):
    text = "Chart Number,First Name,Last Name,DOB,Mobile\nI-0007,Renée,D'Arcy,3/15/45,(617) 555-0111\n"
    report = imports.validate_rows(practice=practice_a, text=text)
    assert report.valid_rows, report.invalid_rows[0].errors if report.invalid_rows else None
    imports.import_valid_rows(report, practice=practice_a)
    patient = Patient.objects.get(chart_number="I-0007")
    assert patient.date_of_birth == datetime.date(1945, 3, 15)  # not 2045, "in the future"
    assert found("darcy", practice_a) == found("7", practice_a) == found("617-555-0111", practice_a) == {"D'Arcy"}


def test_phone_numbers_are_read_in_the_practices_country(practice_a):
    london = Practice.objects.create(name="London", country="GB")
    PatientFactory(practice=london, last_name="Wright", mobile_phone="+447911123456")
    assert set(Patient.objects.filter(practice=london).search("07911 123456", regions=["GB"]).values_list("last_name", flat=True)) == {"Wright"}


def test_the_admin_search_finds_them_in_the_users_practices_only(client_a, charts):
    url = reverse("admin:patients_patient_changelist")
    for term in ("Garcia", "617-555-0187", "0000005", "03/15/1945"):
        response = client_a.get(url, {"q": term})
        assert [p.last_name for p in response.context["cl"].result_list] == ["García"], term
    assert "garcia finds García" in response.content.decode()


@pytest.mark.postgres
def test_every_kind_of_search_is_served_by_the_indexes_on_postgresql(charts, practice_a):
    """With sequential scans off, PostgreSQL still answers from the search indexes: they can
    serve these prefix lookups (the operator class is right), so a million rows are not read."""
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for term, index in (("garcia", "patient_search_last_idx"), ("617-555-0187", "patient_mobile_digits_idx"),
                                ("0000005", "patient_chart_digits_idx"), ("maria garcia", "patient_search_first_idx")):
                plan = Patient.objects.search(term).values("pk").explain()
                assert index in plan, (term, plan)
                assert "Seq Scan" not in plan, (term, plan)
        finally:
            cursor.execute("RESET enable_seqscan")


def test_the_patient_form_reads_a_two_digit_year_of_birth_as_past(client_a, practice_a, frozen):
    """The front desk types 3/15/45: the chart says March 15, 1945, not "cannot be in the future"."""
    response = client_a.post(reverse("admin:patients_patient_add"), {
        "practice": practice_a.pk, "chart_number": "DOB-45", "first_name": "Rosa", "last_name": "Parks",
        "date_of_birth": "3/15/45", "zip_code": "02139", "email": "", "phone": "", "mobile_phone": "", "birth_sex": "F",
        "preferred_language": "en",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert Patient.objects.get(chart_number="DOB-45").date_of_birth == datetime.date(1945, 3, 15)
