"""Two-factor sign-in for staff (patients/staff_auth/two_factor.py): who is asked, enrolment from the
admin with recovery codes, the code step, its limit, and the DEBUG waiver for the demo."""

import datetime

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from patients.models import Role
from tests.factories import PracticeFactory, StaffFactory, staff_member

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-only"
PAGE = "/admin/two-factor/"


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def sign_in_with_password(client: Client, username: str):
    response = client.post("/admin/login/?next=/admin/patients/patient/", {"username": username, "password": PASSWORD, "next": "/admin/patients/patient/"})
    assert response.status_code == 302, response.content.decode()[:1500]
    return client.get(response["Location"])


@pytest.fixture
def superuser():
    return StaffFactory(username="boss", is_superuser=True)


def enrol(client: Client | None, user, frozen) -> list[str]:
    """Enrol an authenticator for `user` (signing in first when no client is given); the recovery codes."""
    if client is None:
        client = Client()
        sign_in_with_password(client, user.username)
    page = client.get(PAGE)
    assert page.status_code == 200 and "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    shown_key = page.context["key"].replace(" ", "")
    import base64

    assert base64.b32decode(shown_key + "=" * (-len(shown_key) % 8)) == device.bin_key
    response = client.post(PAGE, {"code": code_for(device), "next": "/admin/"})
    assert response.status_code == 200
    frozen.shift(datetime.timedelta(seconds=31))  # the next code is a new one
    return response.context["codes"]


def test_a_superuser_signing_in_must_enrol_before_using_the_admin(superuser, frozen):
    client = Client()
    landed = sign_in_with_password(client, "boss")
    assert landed.status_code == 302 and landed["Location"].startswith(PAGE)
    assert client.get("/admin/").status_code == 302  # every admin page sends them here
    codes = enrol(client, superuser, frozen)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/admin/patients/patient/").status_code == 200
    # Recovery codes are kept hashed, never as shown.
    stored = set(StaticToken.objects.filter(device__user=superuser).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & {code.replace("-", "") for code in codes} and not stored & set(codes)


def test_the_next_sign_in_asks_for_a_code_and_refuses_a_wrong_one(superuser, frozen):
    enrol(None, superuser, frozen)
    device = TOTPDevice.objects.get(user=superuser, confirmed=True)
    client = Client()
    landed = sign_in_with_password(client, "boss")
    assert landed["Location"].startswith(PAGE)
    wrong = client.post(PAGE, {"code": "000000" if code_for(device) != "000000" else "111111", "next": "/admin/patients/patient/"})
    assert wrong.status_code == 400 and "That code is not right" in wrong.content.decode()
    frozen.shift(datetime.timedelta(seconds=2))  # django-otp's own delay after a wrong code
    right = client.post(PAGE, {"code": code_for(device), "next": "/admin/patients/patient/"})
    assert right.status_code == 302 and right["Location"] == "/admin/patients/patient/"
    assert client.get("/admin/patients/patient/").status_code == 200
    # The same code cannot be used twice.
    again = Client()
    sign_in_with_password(again, "boss")
    assert again.post(PAGE, {"code": code_for(device)}).status_code == 400


def test_a_recovery_code_works_once(superuser, frozen):
    codes = enrol(None, superuser, frozen)
    client = Client()
    sign_in_with_password(client, "boss")
    response = client.post(PAGE, {"code": codes[3].upper(), "next": "/admin/"}, follow=True)
    assert response.status_code == 200 and "You used a recovery code; 9 left" in response.content.decode()
    other = Client()
    sign_in_with_password(other, "boss")
    frozen.shift(datetime.timedelta(seconds=5))
    assert other.post(PAGE, {"code": codes[3]}).status_code == 400


def test_five_wrong_codes_sign_the_session_out(superuser, frozen):
    enrol(None, superuser, frozen)
    client = Client()
    sign_in_with_password(client, "boss")
    for _ in range(5):
        frozen.shift(datetime.timedelta(seconds=60))  # past django-otp's own growing delay
        assert client.post(PAGE, {"code": "12345x"}).status_code == 400
    response = client.post(PAGE, {"code": "123456"})
    assert response.status_code == 302 and response["Location"] == "/admin/login/"
    assert "_auth_user_id" not in client.session


def test_a_practice_that_requires_it_makes_its_members_enrol(practice_a, frozen):
    member = staff_member(practice_a, Role.FRONT_DESK, username="desk")
    client = Client()
    assert sign_in_with_password(client, "desk").status_code == 200  # not required yet
    practice_a.require_two_factor = True
    practice_a.save()
    client = Client()
    assert sign_in_with_password(client, "desk")["Location"].startswith(PAGE)
    enrol(client, member, frozen)
    other = staff_member(PracticeFactory(), Role.FRONT_DESK, username="elsewhere")
    assert sign_in_with_password(Client(), other.username).status_code == 200


def test_anyone_who_enrolled_is_asked_and_may_turn_it_off_unless_required(practice_a, frozen):
    member = staff_member(practice_a, Role.FRONT_DESK, username="desk")
    client = Client()
    sign_in_with_password(client, "desk")
    enrol(client, member, frozen)
    client = Client()
    assert sign_in_with_password(client, "desk")["Location"].startswith(PAGE)
    device = TOTPDevice.objects.get(user=member, confirmed=True)
    client.post(PAGE, {"code": code_for(device)})
    frozen.shift(datetime.timedelta(seconds=31))
    manage = client.get(PAGE)
    assert "Turn off two-factor sign-in" in manage.content.decode()
    off = client.post(PAGE, {"action": "turn_off", "code": code_for(device)})
    assert off.status_code == 302
    assert not TOTPDevice.objects.filter(user=member).exists()
    assert sign_in_with_password(Client(), "desk").status_code == 200


def test_a_required_account_cannot_turn_it_off(superuser, frozen):
    client = Client()
    sign_in_with_password(client, "boss")
    enrol(client, superuser, frozen)
    device = TOTPDevice.objects.get(user=superuser, confirmed=True)
    assert "cannot be turned off" in client.get(PAGE).content.decode()
    client.post(PAGE, {"action": "turn_off", "code": code_for(device)})
    assert TOTPDevice.objects.filter(user=superuser, confirmed=True).exists()


def test_new_recovery_codes_replace_the_old_ones(superuser, frozen):
    client = Client()
    sign_in_with_password(client, "boss")
    old = enrol(client, superuser, frozen)
    new = client.post(PAGE, {"action": "new_codes"}).context["codes"]
    assert not set(old) & set(new)
    other = Client()
    sign_in_with_password(other, "boss")
    assert other.post(PAGE, {"code": old[0]}).status_code == 400
    frozen.shift(datetime.timedelta(seconds=2))  # django-otp's own delay after a wrong code
    assert other.post(PAGE, {"code": new[0]}).status_code == 302


def test_the_code_page_only_returns_to_this_site(superuser, frozen):
    client = Client()
    sign_in_with_password(client, "boss")
    enrol(client, superuser, frozen)
    device = TOTPDevice.objects.get(user=superuser, confirmed=True)
    client = Client()
    sign_in_with_password(client, "boss")
    response = client.post(PAGE, {"code": code_for(device), "next": "https://evil.example/"})
    assert response["Location"] == "/admin/"


def test_with_debug_on_the_demo_waives_it_for_accounts_without_an_authenticator(superuser, settings, frozen):
    settings.DEBUG = True
    client = Client()
    assert sign_in_with_password(client, "boss").status_code == 200
    page = client.get(PAGE)
    assert "it is waived because this server runs" in page.content.decode()
    enrol(client, superuser, frozen)
    assert sign_in_with_password(Client(), "boss")["Location"].startswith(PAGE)  # enrolled: asked, DEBUG or not


def test_force_login_in_tests_gives_the_second_factor(admin_client):
    """The suite's `client.force_login` signs in whole (tests/conftest.py); this keeps it honest."""
    assert admin_client.get("/admin/").status_code == 200


def test_a_session_whose_device_was_removed_is_asked_again(admin_client, admin_user):
    TOTPDevice.objects.filter(user=admin_user).delete()
    assert admin_client.get("/admin/")["Location"].startswith(PAGE)


def test_the_admin_shows_the_two_factor_link(client_a):
    assert 'href="/admin/two-factor/"' in client_a.get("/admin/").content.decode()


# -- a practice admin resets a member's second factor ---------------------------------------------


def reset_action(client, *memberships):
    from django.contrib.admin import helpers

    return client.post(
        "/admin/patients/membership/",
        {"action": "reset_two_factor", helpers.ACTION_CHECKBOX_NAME: [str(m.pk) for m in memberships]},
        follow=True,
    )


def test_a_practice_admin_resets_a_members_two_factor_and_it_is_audited(client, practice_a, admin_a, frozen):
    from patients.audit import AuditAction, AuditEntry
    from patients.models import Membership

    member = staff_member(practice_a, Role.FRONT_DESK, username="desk")
    enrol(None, member, frozen)
    client.force_login(admin_a)
    response = reset_action(client, Membership.objects.get(user=member))
    assert "Two-factor sign-in reset for 1 team member" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=member).exists() and not StaticToken.objects.filter(device__user=member).exists()
    entry = AuditEntry.objects.get(action=AuditAction.MEMBER_CHANGED, practice=practice_a)
    assert entry.actor == admin_a and "Two-factor sign-in reset" in entry.summary
    assert sign_in_with_password(Client(), "desk").status_code == 200  # no second factor until they enrol again


def test_the_reset_skips_the_admins_own_a_superusers_and_someone_of_another_practice(client, practice_a, practice_b, admin_a, frozen):
    from patients.models import Membership

    shared = staff_member(practice_a, Role.FRONT_DESK, username="shared")
    Membership.objects.create(user=shared, practice=practice_b, role=Role.FRONT_DESK)
    boss = StaffFactory(username="boss", is_superuser=True)
    Membership.objects.create(user=boss, practice=practice_a, role=Role.ADMIN)
    for user in (shared, boss, admin_a):
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client.force_login(admin_a)
    response = reset_action(client, *Membership.objects.filter(practice=practice_a))
    assert "3 skipped" in response.content.decode()
    assert TOTPDevice.objects.filter(user__in=[shared, boss, admin_a], name="phone").count() == 3
