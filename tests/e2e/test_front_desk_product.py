"""The staff side as one product, in Chromium: adding a patient and inviting in one step, the
template editor's snippet buttons and live preview, Activate Now from the home page with a
progress bar that starts at 0, and a patient signing in with a capitalised username. Each flow
also refreshes its screenshot in docs/screenshots/ (the README shows them)."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from invitations.models.bulk_runs import BulkRun, BulkRunStatus
from invitations.models import InvitationTemplate
from patients.models import Patient, Role
from tests.e2e.conftest import ROOT, admin_login
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.workers import sent_to, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DOCS = ROOT / "docs" / "screenshots"


def shot(page, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / name), full_page=True)


def test_adding_a_patient_and_inviting_marks_what_is_needed_and_saves_nothing_until_it_is_all_there(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    admin_login(page, live_server, "frankie")
    page.goto(f"{live_server.url}/admin/patients/patient/add/")

    page.check("#id_send_invitation")  # first on the form
    needs = page.locator("#invitation-needs")
    assert "Still needed for the invitation" in needs.inner_text() and "ZIP code" in needs.inner_text()
    page.fill("#id_chart_number", "NEW-1")
    page.fill("#id_first_name", "Olivia")
    page.fill("#id_last_name", "Martínez")
    page.fill("#id_date_of_birth", "1988-04-09")
    page.select_option("#id_birth_sex", "F")
    page.fill("#id_email", "olivia@example.com")
    assert "ZIP code" in needs.inner_text() and "Email" not in needs.inner_text().split(":", 1)[1]
    shot(page, "add-patient-invite.png")
    page.click("input[name=_save]")  # ZIP code and consent are still missing
    errors = page.inner_text(".errornote, .errorlist")
    assert "ZIP code is missing" in page.inner_text(".field-zip_code") and "consented" in page.inner_text(".field-email_consent")
    assert errors and not Patient.objects.filter(chart_number="NEW-1").exists()
    page.fill("#id_zip_code", "02139")
    page.check("#id_email_consent")
    assert "Everything the invitation needs is filled in." in needs.inner_text()
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert "on its way to olivia@example.com" in page.inner_text(".messagelist")
    assert Patient.objects.get(chart_number="NEW-1").invitations.count() == 1


def test_the_template_editor_inserts_snippets_previews_live_and_says_what_it_removed(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.MANAGER, username="morgan")
    admin_login(page, live_server, "morgan")
    page.goto(f"{live_server.url}/admin/invitations/bulkrun/portal/{practice.pk}/template/")

    body = page.locator("#id_html_body")
    body.fill("<p>Welcome, </p><p><a href=\"[Registration Link]\">Start here</a></p><script>alert(1)</script>")
    body.evaluate("(box) => box.setSelectionRange(12, 12)")  # just after "Welcome, "
    page.click("[data-snippets-for=id_html_body] button[data-snippet='[First Name]']")
    assert "Welcome, [First Name]" in body.input_value()
    body.press("End")
    body.type(" ")  # the live preview follows the typing
    frame = page.frame_locator("#preview-frame")
    frame.locator("text=Welcome, Alex").wait_for(timeout=10_000)
    page.locator("#preview-removed:not([hidden])").wait_for(timeout=10_000)
    assert "<script> removed" in page.inner_text("#preview-removed")
    page.wait_for_timeout(1000)  # the last debounced preview has landed
    frame.locator("text=Start here").wait_for(timeout=10_000)
    # Chromium leaves a sandboxed frame blank in full-page captures: a tall window instead.
    page.set_viewport_size({"width": 1280, "height": 2050})
    frame.locator("text=Start here").wait_for(timeout=10_000)
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / "template-editor.png"))
    page.click("input[name=save]")
    page.wait_for_selector(".messagelist")
    assert "<script> removed" in page.inner_text(".messagelist")
    saved = InvitationTemplate.objects.get(practice=practice)
    assert "[First Name]" in saved.html_body and "script" not in saved.html_body


@pytest.mark.worker
def test_activate_now_from_the_home_page_with_a_bar_that_starts_at_zero(page, live_server, start_worker, mail_dir):
    practice = PracticeFactory(name="Maple Street Dental")
    for i in range(30):
        PatientFactory(practice=practice, email=f"home{i}@example.com")
    staff_member(practice, Role.MANAGER, username="morgan")
    admin_login(page, live_server, "morgan")

    page.goto(f"{live_server.url}/admin/")
    assert page.inner_text("h1") == "Practice management"
    shot(page, "admin-home.png")
    page.click("#portal-home a:text('Activate Now…')")
    page.click("input[type=submit][value^='Yes, invite 30']")
    page.wait_for_selector("#run-bar")
    # Queued (no worker yet): the bar is empty, not full.
    assert page.get_attribute("#run-bar", "value") == "0"
    assert "Queued" in page.inner_text("#run-status")
    start_worker(concurrency=2)
    page.wait_for_selector("#run-bar[max='30'][value='30']", state="attached", timeout=60_000)
    page.wait_for_selector("#run-summary:not([hidden])", timeout=30_000)
    assert not page.is_visible("#run-problem")  # no refusal from the email service: no warning
    shot(page, "activate-now-progress.png")
    assert BulkRun.objects.get(practice=practice).status == BulkRunStatus.DONE
    wait_until(lambda: len(sent_to(mail_dir)) == 30, timeout=30, message="thirty emails")
    page.goto(f"{live_server.url}/admin/invitations/bulkrun/portal/{practice.pk}/")
    shot(page, "portal-dashboard.png")


def test_a_patient_signs_in_with_the_username_capitalised_by_the_phone(page, live_server):
    patient = PatientFactory(practice=PracticeFactory(name="Maple Street Dental"), first_name="Paula")
    patient.portal_user = get_user_model().objects.create_user("paula.p", password="maple leaf harbour 19")
    patient.save()
    page.goto(f"{live_server.url}/portal/login/")
    page.fill("#id_username", "Paula.p")
    page.fill("#id_password", "maple leaf harbour 19")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector("text=Hello Paula")
    assert page.url == f"{live_server.url}/portal/"
    shot(page, "portal-home.png")


def test_the_patient_list_screenshot(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    for i, (first, last) in enumerate([("Olivia", "Martínez"), ("Liam", "O'Brien"), ("Ava", "Chen"), ("Noah", "Patel")]):
        PatientFactory(practice=practice, first_name=first, last_name=last, chart_number=f"C-{i:04d}")
    admin_login(page, live_server, "frankie")
    page.goto(f"{live_server.url}/admin/patients/patient/")
    assert "Not invited" in page.inner_text("#result_list")
    shot(page, "admin-patients.png")
    assert Path(DOCS / "admin-patients.png").exists()
