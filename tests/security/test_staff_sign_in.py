"""Staff sign-in limits (patients/staff_auth/limits.py): per address, per account and address, and
per account from anywhere; unlocked by a password reset; counted before each attempt is evaluated,
also when 40 arrive at once (PostgreSQL and Redis)."""

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core import throttle
from patients.models import Role
from patients.staff_auth import limits
from tests.conftest import count_limits_in
from tests.factories import staff_member
from tests.threads import run_together

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-only"


def staff_sign_in(username: str, password: str, address: str = "10.0.0.1", client: Client | None = None):
    return (client or Client()).post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_staff_sign_in_is_rate_limited_per_address_counting_failures(client, front_desk_a):
    for n in range(10):
        response = client.post("/admin/login/", {"username": f"guess{n}", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins from this address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    other = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302


def test_successful_sign_ins_never_count(practice_a):
    """An office behind one router: fifteen people sign in at opening time."""
    staff = [staff_member(practice_a, Role.FRONT_DESK, username=f"desk{n}") for n in range(15)]
    for member in staff:
        assert staff_sign_in(member.username, PASSWORD).status_code == 302, member.username
    assert throttle.count("staff-login", "10.0.0.1", window_seconds=300) == 0


def test_five_failures_lock_the_account_from_that_address_only(front_desk_a):
    for n in range(5):
        assert staff_sign_in("FrontDesk_A", f"guess{n}").status_code == 200
    refused = staff_sign_in("frontdesk_a", PASSWORD)
    assert refused.status_code == 429
    assert "This account is locked on this network for 15 minutes" in refused.content.decode()
    # Its owner at another desk is not locked out by whoever guessed over there.
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.0.0.2").status_code == 302


def test_the_lock_ends_with_its_window(front_desk_a, frozen):
    for n in range(5):
        staff_sign_in("frontdesk_a", f"guess{n}")
    frozen.shift(14 * 60 + 59)
    assert staff_sign_in("frontdesk_a", PASSWORD).status_code == 429
    frozen.shift(1)
    assert staff_sign_in("frontdesk_a", PASSWORD).status_code == 302


def test_guessing_from_many_addresses_slows_the_account_down(front_desk_a, practice_a):
    for n in range(10):  # a guesser spreading over ten addresses, under every per-address limit
        assert staff_sign_in("frontdesk_a", f"guess{n}", address=f"10.1.{n}.1").status_code == 200
    # Past ten failures, one attempt per growing delay is evaluated, from wherever it comes.
    assert staff_sign_in("frontdesk_a", "guess10", address="10.2.0.1").status_code == 200
    slowed = staff_sign_in("frontdesk_a", PASSWORD, address="10.2.0.2")
    assert slowed.status_code == 429
    assert "accepts one try a minute from a new browser" in slowed.content.decode()
    colleague = staff_member(practice_a, Role.FRONT_DESK, username="colleague")
    assert staff_sign_in(colleague.username, PASSWORD, address="10.2.0.2").status_code == 302


def test_a_browser_the_account_signed_in_from_is_never_slowed_down(front_desk_a):
    own_browser = Client()
    assert staff_sign_in("frontdesk_a", PASSWORD, client=own_browser).status_code == 302
    remembered = own_browser.cookies[limits.KNOWN_BROWSER_COOKIE].value
    own_browser.logout()  # the test client forgets every cookie here; a browser keeps this one
    own_browser.cookies[limits.KNOWN_BROWSER_COOKIE] = remembered
    for n in range(12):
        staff_sign_in("frontdesk_a", f"guess{n}", address=f"10.1.{n}.1")
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.3.0.1").status_code == 429  # a new browser waits
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.3.0.1", client=own_browser).status_code == 302


def test_another_accounts_browser_cookie_does_not_count(front_desk_a, practice_a):
    colleague = staff_member(practice_a, Role.FRONT_DESK, username="colleague")
    shared = Client()
    staff_sign_in(colleague.username, PASSWORD, client=shared)
    remembered = shared.cookies[limits.KNOWN_BROWSER_COOKIE].value
    shared.logout()
    shared.cookies[limits.KNOWN_BROWSER_COOKIE] = remembered
    for n in range(12):
        staff_sign_in("frontdesk_a", f"guess{n}", address=f"10.1.{n}.1")
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.3.0.1", client=shared).status_code == 429
    shared.cookies[limits.KNOWN_BROWSER_COOKIE] = "forged"
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.3.0.1", client=shared).status_code == 429


@pytest.mark.parametrize(("failures", "seconds"), [(10, 0), (11, 2), (12, 4), (15, 32), (16, 60), (400, 60)])
def test_the_delay_grows_and_stops_at_a_minute(failures, seconds):
    assert limits.slow_down_seconds(failures) == seconds


def reset_password(client: Client, user, new_password: str = "a-new-long-password-41"):
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    page = client.get(f"/admin/reset/{uid}/{token}/", follow=True)
    assert page.status_code == 200
    response = client.post(page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert response.status_code == 302, response.content.decode()[:2000]
    return new_password


def test_a_password_reset_unlocks_the_account_everywhere(front_desk_a):
    for n in range(5):
        staff_sign_in("frontdesk_a", f"guess{n}")
    for n in range(10):
        staff_sign_in("frontdesk_a", f"guess{n}", address=f"10.1.{n}.1")
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.0.0.1").status_code == 429
    assert staff_sign_in("frontdesk_a", PASSWORD, address="10.4.0.1").status_code in (200, 429)
    new_password = reset_password(Client(), front_desk_a)
    # Unlocked where it was locked, and no longer slowed down for a new browser either.
    assert staff_sign_in("frontdesk_a", new_password, address="10.0.0.1").status_code == 302
    assert staff_sign_in("frontdesk_a", "wrong", address="10.5.0.1").status_code == 200
    assert staff_sign_in("frontdesk_a", new_password, address="10.5.0.2").status_code == 302


def test_the_reset_page_remembers_the_browser(front_desk_a):
    browser = Client()
    reset_password(browser, front_desk_a)
    assert limits.KNOWN_BROWSER_COOKIE in browser.cookies


def test_staff_sign_in_still_works(client, front_desk_a):
    response = client.post("/admin/login/", {"username": "frontdesk_a", "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(front_desk_a.pk)


def test_a_signed_in_user_guessing_another_password_is_counted(client, front_desk_a, practice_a):
    """Being signed in already must not make a wrong guess look like a success."""
    staff_member(practice_a, Role.FRONT_DESK, username="colleague")
    client.force_login(front_desk_a)
    for n in range(5):
        assert client.post("/admin/login/", {"username": "colleague", "password": f"guess{n}"}, REMOTE_ADDR="10.0.0.1").status_code == 200
    assert client.post("/admin/login/", {"username": "colleague", "password": PASSWORD}, REMOTE_ADDR="10.0.0.1").status_code == 429


@pytest.mark.django_db(transaction=True)
def test_the_address_limit_holds_across_gunicorn_workers(tmp_path, front_desk_a):
    """With the limit in one process's memory, 17 of 25 attempts went through a limit of 10 on two
    workers; the counters are shared now."""
    import requests

    from tests.workers import gunicorn

    with gunicorn(tmp_path, workers=2) as (base, _log):
        statuses = []
        for n in range(25):
            session = requests.Session()  # a new connection: the workers take turns
            page = session.get(base + "/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            response = session.post(
                base + "/admin/login/", data={"username": f"guess{n}", "password": "wrong", "csrfmiddlewaretoken": token},
                headers={"Referer": base + "/admin/login/"}, allow_redirects=False,
            )
            statuses.append(response.status_code)
    assert statuses == [200] * 10 + [429] * 15


# -- forty at once ------------------------------------------------------------------------------

STORES = [
    pytest.param("database", marks=[pytest.mark.postgres], id="postgres"),
    pytest.param("redis", marks=[pytest.mark.redis], id="redis"),
]


@pytest.fixture(params=STORES)
def staff_limit_store(request, monkeypatch):
    return count_limits_in(request.param, monkeypatch)


def staff_burst(requests: list[tuple[str, str, str]]) -> list[int]:
    """POST each (username, password, address) to the staff sign-in from its own thread, all at once."""
    return run_together([lambda request=request: staff_sign_in(*request, client=Client()).status_code for request in requests])


@pytest.mark.django_db(transaction=True)
def test_forty_guesses_at_once_from_one_address_are_five_evaluated(staff_limit_store, front_desk_a):
    statuses = staff_burst([("frontdesk_a", f"guess{n}", "10.0.0.1") for n in range(40)])
    assert statuses.count(200) == 5  # evaluated (and wrong)
    assert statuses.count(429) == 35


@pytest.mark.django_db(transaction=True)
def test_forty_guesses_at_once_from_forty_addresses_are_eleven_evaluated(staff_limit_store, front_desk_a):
    """Ten within the account's limit, then one turn of the slow-down."""
    statuses = staff_burst([("frontdesk_a", f"guess{n}", f"10.1.{n}.1") for n in range(40)])
    assert statuses.count(200) == 11
    assert statuses.count(429) == 29


@pytest.mark.django_db(transaction=True)
def test_forty_accounts_at_once_from_one_address_are_ten_evaluated(staff_limit_store, practice_a):
    statuses = staff_burst([(f"nobody{n}", "guess", "10.0.0.1") for n in range(40)])
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
