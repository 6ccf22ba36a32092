"""The end-to-end flows of issue 7 in Chromium, against a live server and a real Celery worker.

Emails are written by the worker's file backend; the tests read the link out of them like a
patient would. Each test leaves a screenshot of its last page in var/screenshots/e2e/."""

import datetime
import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from invitations import services
from invitations.models import Invitation, Source, Status
from notifications.models import AlertType, NotificationPreference
from patients.models import Membership, Patient, Role
from tests.e2e.conftest import SCREENSHOT_DIR, admin_login
from tests.workers import read_mail
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def link_in(message: str) -> str:
    match = re.search(r"https?://\S+/invite/[A-Za-z0-9_-]+/", message)
    assert match, message[:2000]
    return match.group(0)


def wait_for_status(patient: Patient, status: str, timeout: float = 30) -> Invitation:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        invitation = Invitation.objects.filter(patient=patient).order_by("-created_at").first()
        if invitation is not None and invitation.status == status:
            return invitation
        time.sleep(0.2)
    raise AssertionError(f"invitation did not become {status}: {invitation and invitation.status}")


def test_1_front_desk_adds_a_patient_with_an_invitation_and_sees_sent(page, live_server, celery_worker, mail_dir):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    admin_login(page, live_server, "frankie")

    page.goto(f"{live_server.url}/admin/patients/patient/add/")
    page.fill("#id_chart_number", "E2E-1")
    page.fill("#id_first_name", "Olivia")
    page.fill("#id_last_name", "Martínez")
    page.fill("#id_date_of_birth", "1988-04-09")
    page.select_option("#id_birth_sex", "F")
    page.fill("#id_email", "olivia.martinez@example.com")
    page.fill("#id_zip_code", "02139")
    page.check("#id_email_consent")
    page.check("#id_send_invitation")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")

    patient = Patient.objects.get(chart_number="E2E-1")
    wait_for_status(patient, Status.SENT)
    message = read_mail(mail_dir, to="olivia.martinez@example.com")
    assert "Olivia" in message and "Martínez" not in message and "1988" not in message
    page.goto(f"{live_server.url}/admin/patients/patient/?q=E2E-1")
    assert "Sent" in page.inner_text("#result_list")


def test_2_patient_follows_the_emailed_link_registers_and_admin_shows_active(page, live_server, celery_worker, mail_dir):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    patient = PatientFactory(practice=practice, first_name="Liam", last_name="O'Brien", date_of_birth=datetime.date(1979, 12, 1), email="liam@example.com")
    outcome = services.invite(patient, now=timezone.now(), actor=None, source=Source.MANUAL)
    assert outcome.created
    wait_for_status(patient, Status.SENT)
    link = link_in(read_mail(mail_dir, to="liam@example.com"))

    page.goto(link.replace("https://portal.example.test", live_server.url))
    page.fill("#id_last_name", "obrien")
    page.fill("#id_date_of_birth", "1979-12-02")  # wrong date of birth
    page.fill("#id_username", "liam.ob")
    page.fill("#id_password1", "maple leaf harbour 19")
    page.fill("#id_password2", "maple leaf harbour 19")
    page.click("button[type=submit]")
    assert "could not confirm your details" in page.inner_text("[role=alert]")

    page.fill("#id_last_name", "O'Brien")
    page.fill("#id_date_of_birth", "1979-12-01")
    page.fill("#id_password1", "maple leaf harbour 19")
    page.fill("#id_password2", "maple leaf harbour 19")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Hello Liam")
    assert page.url == f"{live_server.url}/portal/"

    staff = browser_context_page(page)
    admin_login(staff, live_server, "frankie")
    staff.goto(f"{live_server.url}/admin/patients/patient/?q={patient.chart_number}")
    assert "Registered" in staff.inner_text("#result_list")
    staff.screenshot(path=str(SCREENSHOT_DIR / "test_2_admin_shows_active.png"), full_page=True)
    staff.context.close()


def browser_context_page(page):
    """A second, separate browser session (the front desk) beside the patient's."""
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    return context.new_page()


def test_4_expired_link_shows_the_expired_page_and_used_link_shows_sign_in(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    patient = PatientFactory(practice=practice)
    now = timezone.now()
    expired, expired_token = invitation_with_token(patient=patient, created_at=now - datetime.timedelta(days=7, seconds=1))
    page.goto(f"{live_server.url}/invite/{expired_token}/")
    assert "expired" in page.inner_text("main").lower()

    other = PatientFactory(practice=practice)
    used, used_token = invitation_with_token(patient=other, created_at=now)
    Invitation.objects.filter(pk=used.pk).update(status=Status.ACCEPTED, accepted_at=now)
    page.goto(f"{live_server.url}/invite/{used_token}/")
    body = page.inner_text("main").lower()
    assert "already" in body and page.locator("a[href='/portal/login/']").count() >= 1
    page.click("a[href='/portal/login/']")
    page.wait_for_selector("#id_username")


def test_5_member_of_two_practices_switches_practice_and_saves_preferences(page, live_server):
    maple, river = PracticeFactory(name="Maple Street Dental"), PracticeFactory(name="Riverside Aesthetics")
    user = staff_member(maple, Role.MANAGER, username="riley")
    Membership.objects.create(user=user, practice=river, role=Role.ADMIN)
    admin_login(page, live_server, "riley")
    page.goto(f"{live_server.url}/admin/notifications/notificationpreference/my/")
    # A change left unsaved is never dropped silently: switching asks first.
    page.uncheck(f"#id_type_{AlertType.PRE_QUALIFIED.value}")
    page.select_option("#id_practice", str(river.pk))
    page.wait_for_selector("#unsaved-changes:not([hidden])")
    assert "Your changes to the alerts for Maple Street Dental are not saved yet." in page.inner_text("#unsaved-changes")
    assert page.input_value("#id_practice") == str(maple.pk)  # still on Maple until the choice is made
    page.click("#save-and-switch")
    page.wait_for_selector(f"h2:has-text(\"Alerts for {river.name}\")")
    assert NotificationPreference.objects.get(user=user, practice=maple, alert_type=AlertType.PRE_QUALIFIED).enabled is False
    assert "Saved your notification preferences for Maple Street Dental." in page.inner_text(".messagelist")
    page.uncheck(f"#id_type_{AlertType.DECLINED.value}")
    page.click("#preferences-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert NotificationPreference.objects.get(user=user, practice=river, alert_type=AlertType.DECLINED).enabled is False
    assert NotificationPreference.objects.filter(user=user, practice=maple, enabled=False).count() == 1
    assert get_user_model().objects.get(pk=user.pk).is_staff


def test_3_practice_admin_runs_activate_now_and_watches_the_progress_bar_reach_100(page, live_server, celery_worker, mail_dir):
    from invitations.models.bulk_runs import BulkRun, BulkRunStatus
    from tests.workers import sent_to, wait_until

    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.ADMIN, username="morgan")
    for i in range(40):
        PatientFactory(practice=practice, email=f"bulk{i}@example.com")
    PatientFactory(practice=practice, email="", chart_number="NO-EMAIL")  # skipped, with its reason
    admin_login(page, live_server, "morgan")

    page.goto(f"{live_server.url}/admin/invitations/bulkrun/portal/{practice.pk}/")
    page.click("text=Activate Now…")
    assert "40" in page.inner_text("#content-main")  # the preview: who will be invited
    page.click("input[type=submit][value^='Yes, invite 40']")
    page.wait_for_selector("#run-bar")
    # The bar fills while the worker sends; the page polls by itself (no reload here), its script
    # running under the page's Content-Security-Policy nonce. (Playwright's wait_for_function would
    # evaluate a string in the page, which that policy rightly refuses: selectors wait instead.)
    page.wait_for_selector("#run-bar[max='40'][value='40']", state="attached", timeout=60_000)
    page.wait_for_selector("#run-summary:not([hidden])", timeout=30_000)
    assert BulkRun.objects.get(practice=practice).status == BulkRunStatus.DONE
    wait_until(lambda: len(sent_to(mail_dir)) == 40, timeout=30, message="forty emails")
    assert set(sent_to(mail_dir).values()) == {1}
