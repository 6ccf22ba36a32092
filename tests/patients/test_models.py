import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError

from patients.models import EmailOptOut, Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db
TODAY = datetime.date(2026, 11, 22)


def validation_errors(patient: Patient) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        patient.full_clean()
    return excinfo.value.message_dict


@time_machine.travel(datetime.datetime(2026, 11, 22, 12, tzinfo=datetime.timezone.utc))
def test_it_rejects_a_date_of_birth_in_the_future(practice_a):
    patient = PatientFactory.build(practice=practice_a, date_of_birth=TODAY + datetime.timedelta(days=1))
    assert validation_errors(patient)["date_of_birth"] == ["Date of birth cannot be in the future."]


@time_machine.travel(datetime.datetime(2026, 11, 22, 12, tzinfo=datetime.timezone.utc))
def test_it_accepts_today_as_date_of_birth(practice_a):
    PatientFactory.build(practice=practice_a, date_of_birth=TODAY).full_clean()


@time_machine.travel(datetime.datetime(2026, 11, 22, 12, tzinfo=datetime.timezone.utc))
def test_it_rejects_an_absurdly_old_date_of_birth(practice_a):
    patient = PatientFactory.build(practice=practice_a, date_of_birth=datetime.date(1900, 1, 1))
    assert "check the year" in validation_errors(patient)["date_of_birth"][0]
    PatientFactory.build(practice=practice_a, date_of_birth=datetime.date(1901, 11, 22)).full_clean()


@pytest.mark.parametrize("zip_code", ["0213", "021390", "02139-43", "ABCDE", "02139 4307"])
def test_it_rejects_bad_zip_codes(practice_a, zip_code):
    patient = PatientFactory.build(practice=practice_a, zip_code=zip_code)
    assert "ZIP" in validation_errors(patient)["zip_code"][0]


@pytest.mark.parametrize("zip_code", ["02139", "02139-4307", ""])
def test_it_accepts_zip_and_zip_plus_four(practice_a, zip_code):
    PatientFactory.build(practice=practice_a, zip_code=zip_code).full_clean()


def test_it_rejects_bad_email_syntax(practice_a):
    patient = PatientFactory.build(practice=practice_a, email="not-an-address")
    assert "email" in validation_errors(patient)


def test_it_trims_names_and_lowercases_email(practice_a):
    patient = PatientFactory.build(practice=practice_a, first_name="  Ann ", last_name=" O'Neil ", email=" Ann.ONeil@Example.COM ")
    patient.full_clean()
    assert (patient.first_name, patient.last_name, patient.email) == ("Ann", "O'Neil", "ann.oneil@example.com")


def test_it_keeps_chart_numbers_unique_within_a_practice(practice_a, practice_b):
    PatientFactory(practice=practice_a, chart_number="A-1")
    PatientFactory(practice=practice_b, chart_number="A-1")  # another practice may reuse it
    duplicate = PatientFactory.build(practice=practice_a, chart_number="A-1")
    assert validation_errors(duplicate)["__all__"] == ["Another patient of this practice has this chart number."]


def test_family_members_may_share_an_email(practice_a):
    PatientFactory(practice=practice_a, email="family@example.com", first_name="Parent")
    child = PatientFactory.build(practice=practice_a, email="FAMILY@example.com", first_name="Child")
    child.full_clean()
    child.save()
    assert Patient.objects.filter(email="family@example.com").count() == 2


def test_opt_out_matches_case_insensitively(practice_a):
    EmailOptOut.objects.create(practice=practice_a, email="Stop@Example.com")
    assert EmailOptOut.objects.matching(practice_a.pk, " STOP@example.COM ").exists()


def test_str_carries_no_clinical_details(practice_a):
    patient = PatientFactory(practice=practice_a, first_name="Ann", last_name="Lee", chart_number="77", date_of_birth=datetime.date(1970, 1, 2))
    assert str(patient) == "Ann Lee (chart 77)"
    assert "1970" not in str(patient) and "@" not in str(patient)
