"""The patient list on a 1366×768 laptop screen, in Chromium: every column is on the screen and no
address is cut, for the front desk of one practice and for a member of two (who also sees the
practice column), beside the filters."""

import pytest

from patients.models import Membership, Role
from tests.e2e.conftest import SCREENSHOT_DIR, admin_login
from tests.factories import PatientFactory, PracticeFactory, staff_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAYOUT = """() => {
  const table = document.querySelector('#result_list');
  const results = table.closest('.results') || table.parentElement;
  const cut = [...table.querySelectorAll('tbody td, tbody th')]
      .filter(cell => cell.scrollWidth > cell.clientWidth + 1).map(cell => cell.className + ': ' + cell.innerText);
  return {
    viewport: window.innerWidth,
    page: document.documentElement.scrollWidth,
    resultsScroll: results.scrollWidth, resultsWidth: results.clientWidth,
    rightmost: Math.max(...[...table.querySelectorAll('thead th')].map(th => th.getBoundingClientRect().right)),
    headers: [...table.querySelectorAll('thead th')].map(th => th.innerText.trim().toLowerCase()),
    cut,
  };
}"""


@pytest.fixture
def laptop(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def test_the_patient_list_fits_a_1366_pixel_screen(laptop, live_server):
    maple = PracticeFactory(name="Maple Street Dental")
    river = PracticeFactory(name="Riverside Aesthetics")
    for number, practice in enumerate([maple, river] * 15):
        PatientFactory(
            practice=practice, first_name="Maximiliana", last_name=f"Featherstonehaugh-Rodríguez{number}",
            email=f"maximiliana.featherstonehaugh.rodriguez{number}@family-inbox.example",
            mobile_phone=f"+1617555{number:04d}",
        )
    staff_member(maple, Role.FRONT_DESK, username="frankie")
    riley = staff_member(maple, Role.MANAGER, username="riley")
    Membership.objects.create(user=riley, practice=river, role=Role.ADMIN)

    for username in ("frankie", "riley"):
        laptop.context.clear_cookies()
        admin_login(laptop, live_server, username)
        laptop.goto(f"{live_server.url}/admin/patients/patient/")
        laptop.wait_for_selector("#result_list")
        layout = laptop.evaluate(LAYOUT)
        laptop.screenshot(path=str(SCREENSHOT_DIR / f"patient-list-1366-{username}.png"))
        assert layout["page"] <= layout["viewport"], layout  # no sideways scrolling of the page
        assert layout["resultsScroll"] <= layout["resultsWidth"] + 1, layout  # nor of the table
        assert layout["rightmost"] <= layout["viewport"], layout
        assert layout["cut"] == [], layout["cut"][:3]  # long names and addresses wrap, never cut
        headers = [h for h in layout["headers"] if h]
        assert {"chart number", "name", "portal invitation", "date of birth", "email / mobile phone"} <= set(headers), headers
        assert ("practice" in headers) == (username == "riley")
        assert laptop.locator("#result_list .field-contact").first.is_visible()
        assert "(617) 555-0000" in laptop.inner_text("#result_list") or "(617) 555-0001" in laptop.inner_text("#result_list")
