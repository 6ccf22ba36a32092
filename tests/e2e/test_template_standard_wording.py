"""In Chromium: a practice that wrote its own HTML puts back the standard wording and saves it."""

import pytest

from invitations.models import InvitationTemplate
from patients.models import Role
from tests.e2e.conftest import admin_login
from tests.factories import PracticeFactory, staff_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_puts_back_the_standard_wording(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    InvitationTemplate.objects.create(practice=practice, subject="Hi", html_body="<p>Mine [Registration Link]</p>")
    staff_member(practice, Role.MANAGER, username="riley")
    admin_login(page, live_server, "riley")
    page.goto(f"{live_server.url}/admin/invitations/bulkrun/portal/{practice.pk}/template/")
    page.click("#use-standard-wording")
    shipped = InvitationTemplate.default()
    assert page.input_value("[name=subject]") == shipped.subject
    assert page.input_value("[name=html_body]") == shipped.html_body
    assert "Press Save to use it" in page.inner_text("#standard-wording-note")
    page.click("input[name=save]")
    page.wait_for_selector(".messagelist")
    saved = InvitationTemplate.objects.get(practice=practice)
    assert (saved.subject, "Mine" in saved.html_body) == (shipped.subject, False)
