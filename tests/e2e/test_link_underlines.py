"""In Chromium: a link inside text is underlined on staff pages (breadcrumbs, "Why no invite?"'s
fixes, Activate Now's channel link): its colour alone is too close to the text's (axe-core's
link-in-text-block: 1.42:1 and 2.6:1 measured)."""

import pytest

from patients.models import Role
from tests.e2e.conftest import admin_login
from tests.factories import PatientFactory, PracticeFactory, staff_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOT_UNDERLINED = """() => [...document.querySelectorAll('.breadcrumbs a, #content p a, #content .fix a, #content dd a')]
  .filter(a => a.offsetParent !== null && !a.classList.contains('button'))
  .filter(a => !getComputedStyle(a).textDecorationLine.includes('underline'))
  .map(a => a.innerText.trim())"""


def test_links_inside_text_are_underlined(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    patient = PatientFactory(practice=practice, email="")  # "Why no invite?" has fixes with links
    staff_member(practice, Role.ADMIN, username="morgan")
    admin_login(page, live_server, "morgan")
    for path in (f"/admin/patients/patient/{patient.pk}/diagnostics/", f"/admin/invitations/bulkrun/portal/{practice.pk}/activate/",
                 f"/admin/patients/patient/{patient.pk}/change/"):
        page.goto(live_server.url + path)
        assert page.locator(".breadcrumbs a").count() and page.locator("#content p a").count(), path
        assert page.evaluate(NOT_UNDERLINED) == [], path
