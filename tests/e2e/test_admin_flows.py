"""Front-desk flows in a real browser."""

import pytest

from patients.models import Patient, Role
from tests.e2e.conftest import admin_login
from tests.factories import PracticeFactory, staff_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_front_desk_adds_a_patient_and_imports_a_csv(page, live_server, tmp_path):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    admin_login(page, live_server, "frankie")

    page.goto(f"{live_server.url}/admin/patients/patient/add/")
    assert page.locator("#id_practice").get_attribute("type") == "hidden"  # one practice: no picking
    page.fill("#id_chart_number", "M-100")
    page.fill("#id_first_name", "Ann")
    page.fill("#id_last_name", "Lee")
    page.fill("#id_zip_code", "123")  # wrong: a field error, nothing lost
    page.click("input[name=_save]")
    assert "5-digit ZIP code" in page.inner_text(".errorlist")
    assert page.input_value("#id_first_name") == "Ann"
    page.fill("#id_zip_code", "02139")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert Patient.objects.filter(practice=practice, chart_number="M-100").exists()

    csv = tmp_path / "patients.csv"
    csv.write_text("chart_number,first_name,last_name,date_of_birth,email\nM-101,Bo,Kim,1975-05-17,bo@example.com\nM-102,Cy,Ng,2999-01-01,cy@example.com\n")
    page.goto(f"{live_server.url}/admin/patients/patient/")
    page.click("text=Import from CSV")
    page.set_input_files("#id_file", str(csv))
    page.click("input[type=submit]")
    assert "cannot be in the future" in page.inner_text("#content table")
    page.click("input[name=confirm]")
    page.wait_for_selector(".messagelist")
    assert "Imported 1 patient into" in page.inner_text(".messagelist")
    assert set(Patient.objects.values_list("chart_number", flat=True)) == {"M-100", "M-101"}
