"""Family and caregiver access in Chromium, against a live server and a real Celery worker that sends
the invitations (written as files, read the way a parent would):

1. the front desk adds a parent to a child from the patient page; the parent registers once from the
   first child's invitation, links the second child from the second invitation with the same login
   and switches between them;
2. a teenager's 18th birthday (the ending job run at that moment) ends the parent's access, the open
   session is refused on its next page, and the new adult is invited once, to their own address;
3. an adult invites a caregiver from their portal; the caregiver registers; the adult revokes the
   access and the caregiver's next page is refused.
"""

import datetime
import re
import time

import pytest
from django.contrib.auth import get_user_model

from invitations import representatives
from invitations.models import Invitation, Source
from patients.models import Patient, Role
from patients.models.representatives import AccessLevel, AccessStatus, Relationship, RepresentativeAccess
from tests.e2e.conftest import admin_login
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.family_factories import AccessFactory, RepresentativeFactory
from tests.workers import sent_to

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
User = get_user_model()
PASSWORD = "correct horse battery 42"


def mails_to(mail_dir, address: str, count: int, timeout: float = 40) -> list[str]:
    """The first `count` emails the worker wrote to `address` (waits for them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            message for path in sorted(mail_dir.glob("*.log")) for message in path.read_text().split("-" * 79)
            if f"To: {address}" in message
        ]
        if len(found) >= count:
            return found
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} emails to {address} within {timeout}s")


def local_link(message: str, live_server) -> str:
    match = re.search(r"https?://\S+?/invite/[A-Za-z0-9_-]+/", message.replace("=\n", ""))
    assert match, message[:1500]
    return match.group(0).replace("https://portal.example.test", live_server.url)


def test_a_parent_registers_once_links_the_second_child_and_switches(browser, page, live_server, celery_worker, mail_dir):
    practice = PracticeFactory(name="Maple Street Dental")
    staff_member(practice, Role.FRONT_DESK, username="frankie")
    today = datetime.date.today()
    sofia = PatientFactory(practice=practice, first_name="Sofia", last_name="Ruiz", date_of_birth=today.replace(year=today.year - 8))
    lucas = PatientFactory(practice=practice, first_name="Lucas", last_name="Ruiz", date_of_birth=today.replace(year=today.year - 5))

    # The front desk adds the mother from Sofia's page and invites her by email at once.
    admin_login(page, live_server, "frankie")
    page.goto(f"{live_server.url}/admin/patients/patient/{sofia.pk}/change/")
    assert "No parent, guardian or caregiver on file" in page.inner_text("#representatives")
    page.click("#representatives a.addlink")
    page.fill("#id_first_name", "Elena")
    page.fill("#id_last_name", "Ruiz")
    page.fill("#id_email", "elena@family.example")
    page.select_option("#id_relationship", Relationship.PARENT)
    page.select_option("#id_send_by", "email")
    page.click("input[type=submit][value='Add representative']")
    page.wait_for_selector("#representatives")
    assert "Elena Ruiz" in page.inner_text("#representatives")
    # ...and links Lucas to the same person.
    page.goto(f"{live_server.url}/admin/patients/patient/{lucas.pk}/representatives/add/")
    page.select_option("#id_existing", label="Elena R.")
    page.select_option("#id_relationship", Relationship.PARENT)
    page.select_option("#id_send_by", "email")
    page.click("input[type=submit][value='Add representative']")
    page.wait_for_selector("#representatives")

    first, second = mails_to(mail_dir, "elena@family.example", 2)
    by_child = {("Sofia" if "Sofia" in m else "Lucas"): local_link(m, live_server) for m in (first, second)}
    assert set(by_child) == {"Sofia", "Lucas"}

    parent = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    parent.goto(by_child["Sofia"])
    parent.fill("#id_last_name", "ruiz")
    parent.fill("#id_date_of_birth", sofia.date_of_birth.strftime("%m/%d/%Y"))
    parent.fill("#id_username", "elena.ruiz")
    parent.fill("#id_password1", PASSWORD)
    parent.fill("#id_password2", PASSWORD)
    parent.click("form[novalidate] button[type=submit]")
    parent.wait_for_selector(".record-bar")
    assert parent.inner_text("h1") == "Sofia's portal"

    parent.goto(by_child["Lucas"])
    assert "You are signed in as elena.ruiz" in parent.inner_text("main")
    parent.fill("#id_last_name", "Ruiz")
    parent.fill("#id_date_of_birth", lucas.date_of_birth.strftime("%m/%d/%Y"))
    parent.click("form[novalidate] button[type=submit]")
    parent.wait_for_selector("#record-switch")
    assert parent.inner_text("h1") == "Lucas's portal"
    parent.select_option("#record-switch", str(sofia.pk))
    parent.click(".record-switch button[type=submit]")
    parent.wait_for_selector(".record-bar")
    assert parent.inner_text("h1") == "Sofia's portal"
    assert User.objects.filter(username="elena.ruiz").count() == 1
    assert not Patient.objects.filter(portal_user__username="elena.ruiz").exists()
    parent.context.close()


def test_an_18th_birthday_ends_the_parents_access_and_invites_the_new_adult_once(browser, live_server, celery_worker, mail_dir):
    from django.utils import timezone

    practice = PracticeFactory(name="Maple Street Dental", time_zone="UTC")
    today = timezone.now().date()
    turning = PatientFactory(practice=practice, first_name="Mateo", last_name="Ruiz", email="mateo@own.example",
                             date_of_birth=today.replace(year=today.year - 18) + datetime.timedelta(days=1))
    access = AccessFactory(patient=turning, level=AccessLevel.LIMITED, representative=RepresentativeFactory(practice=practice))
    invitation = representatives.invite(access, now=timezone.now()).invitation
    link = local_link(mails_to(mail_dir, access.representative.email, 1)[0], live_server)

    parent = browser.new_context().new_page()
    parent.goto(link)
    parent.fill("#id_last_name", "Ruiz")
    parent.fill("#id_date_of_birth", turning.date_of_birth.strftime("%m/%d/%Y"))
    parent.fill("#id_username", "maria.ruiz")
    parent.fill("#id_password1", PASSWORD)
    parent.fill("#id_password2", PASSWORD)
    parent.click("form[novalidate] button[type=submit]")
    parent.wait_for_selector("#limited-access")  # a teenager's parent: the limited set, and told so

    # The day before the birthday nothing ends; on it (the job at that moment) the access ends, once.
    tomorrow = timezone.now() + datetime.timedelta(days=1)
    assert representatives.end_due(now=timezone.now()) == 0
    assert representatives.end_due(now=tomorrow) == 1
    assert representatives.end_due(now=tomorrow + datetime.timedelta(hours=1)) == 0
    access.refresh_from_db()
    assert access.status == AccessStatus.ENDED

    parent.reload()
    assert "Mateo" not in parent.inner_text("main")  # the open session no longer opens the portal

    mails_to(mail_dir, "mateo@own.example", 2)  # the notice and the invitation to their own account
    mails_to(mail_dir, access.representative.email, 2)  # the invitation they used, and the notice
    time.sleep(2)  # a second invitation would have been written by now
    assert sent_to(mail_dir)["mateo@own.example"] == 2
    assert Invitation.objects.own().filter(patient=turning, source=Source.CAME_OF_AGE).count() == 1
    assert invitation.pk != Invitation.objects.own().get(patient=turning).pk
    parent.context.close()


def test_an_adult_invites_a_caregiver_who_registers_and_is_refused_once_revoked(browser, page, live_server, celery_worker, mail_dir):
    practice = PracticeFactory(name="Riverside Aesthetics")
    rosa = PatientFactory(practice=practice, first_name="Rosa", last_name="Alvarez", date_of_birth=datetime.date(1950, 6, 1))
    rosa.portal_user = User.objects.create_user("rosa.a", password=PASSWORD)
    rosa.save()

    page.goto(f"{live_server.url}/portal/login/")
    page.fill("#id_username", "rosa.a")
    page.fill("#id_password", PASSWORD)
    page.click("form[novalidate] button[type=submit]")
    page.wait_for_selector("h1")
    page.click("text=Who can see your portal")
    page.fill("#id_first_name", "Ana")
    page.fill("#id_last_name", "Alvarez")
    page.fill("#id_email", "ana@family.example")
    page.check("input[name=level][value=limited]")
    page.click("main form[novalidate] button[type=submit]")
    page.wait_for_selector(".accesses")
    assert "Ana Alvarez" in page.inner_text(".accesses")

    caregiver = browser.new_context().new_page()
    caregiver.goto(local_link(mails_to(mail_dir, "ana@family.example", 1)[0], live_server))
    caregiver.fill("#id_last_name", "Alvarez")
    caregiver.fill("#id_date_of_birth", "06/01/1950")
    caregiver.fill("#id_username", "ana.a")
    caregiver.fill("#id_password1", PASSWORD)
    caregiver.fill("#id_password2", PASSWORD)
    caregiver.click("form[novalidate] button[type=submit]")
    caregiver.wait_for_selector("#limited-access")
    assert caregiver.inner_text("h1") == "Rosa's portal"

    page.reload()
    page.click(".accesses button[type=submit]")
    page.wait_for_selector("main")
    assert "Nobody else can see your portal" in page.inner_text("main")
    assert RepresentativeAccess.objects.get(patient=rosa).status == AccessStatus.REVOKED

    caregiver.reload()
    assert "Rosa" not in caregiver.inner_text("main")
    caregiver.context.close()
