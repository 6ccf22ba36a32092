"""The emailed link: GET changes nothing, POST verifies identity and creates the account."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from invitations.models import (
    MAX_FAILED_ATTEMPTS,
    EventKind,
    Invitation,
    RevokeReason,
    Status,
)
from patients.models import Patient
from portal.forms import IDENTITY_MISMATCH
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
User = get_user_model()
SECOND = datetime.timedelta(seconds=1)
SEVEN_DAYS = datetime.timedelta(days=7)


@pytest.fixture
def jose_invited():
    practice = PracticeFactory(name="Maple Street Dental", contact_phone="(617) 555-0142")
    patient = PatientFactory(practice=practice, first_name="José", last_name="Núñez García", date_of_birth=datetime.date(1975, 1, 31))
    return invitation_with_token(patient=patient)


def register_url(token):
    return reverse("portal:register", args=[token])


def jose_answers(**overrides):
    data = {
        "last_name": "  núñez garcia ",
        "date_of_birth": "01/31/1975",
        "username": "jose.n",
        "password1": "correct horse battery 42",
        "password2": "correct horse battery 42",
    }
    data.update(overrides)
    return data


def test_opening_the_link_changes_nothing_but_the_timeline(client, jose_invited):
    invitation, token = jose_invited
    before = Invitation.objects.filter(pk=invitation.pk).values().get()
    for _ in range(3):  # a mail scanner, then the patient, twice
        response = client.get(register_url(token))
        assert response.status_code == 200
        assert "Set up your portal account" in response.content.decode()
    after = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert before == after
    assert list(invitation.events.values_list("kind", flat=True)) == [EventKind.LINK_OPENED] * 3
    assert not User.objects.exists()


def test_the_pages_send_no_referrer_and_are_not_cached(client, jose_invited):
    invitation, token = jose_invited
    for response in (client.get(register_url(token)), client.get(register_url("nope" * 10)), client.post(register_url(token), jose_answers(last_name="x"))):
        assert response["Referrer-Policy"] == "no-referrer"
        assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_it_registers_logs_in_and_lands_on_the_portal_home(client, jose_invited):
    invitation, token = jose_invited
    response = client.post(register_url(token), jose_answers())
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED and invitation.accepted_at == NOW
    patient = Patient.objects.get(pk=invitation.patient_id)
    user = patient.portal_user
    assert user.username == "jose.n"
    assert user.check_password("correct horse battery 42")
    assert not user.is_staff and not user.is_superuser
    assert patient.registered_at == NOW
    home = client.get(reverse("portal:home"))
    assert home.status_code == 200
    assert "Maple Street Dental" in home.content.decode() and "Núñez García" in home.content.decode()


def test_the_link_works_once(client, jose_invited):
    invitation, token = jose_invited
    client.post(register_url(token), jose_answers())
    client.logout()
    again = client.get(register_url(token))
    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    second_try = client.post(register_url(token), jose_answers(username="someone.else"))
    assert second_try.status_code == 410
    assert User.objects.count() == 1


def test_the_link_works_a_second_before_seven_days(client, jose_invited, frozen):
    invitation, token = jose_invited
    frozen.move_to(NOW + SEVEN_DAYS - SECOND)
    assert client.post(register_url(token), jose_answers()).status_code == 302


def test_the_link_is_refused_a_second_after_seven_days_even_before_the_sweep(client, jose_invited, frozen):
    invitation, token = jose_invited
    frozen.move_to(NOW + SEVEN_DAYS + SECOND)
    for response in (client.get(register_url(token)), client.post(register_url(token), jose_answers())):
        assert response.status_code == 410
        assert "has expired" in response.content.decode()
        assert "(617) 555-0142" in response.content.decode()
    assert not User.objects.exists()


def test_an_unknown_link_gets_a_friendly_page_that_reveals_nothing(client):
    response = client.get(register_url("x" * 43))
    assert response.status_code == 404
    content = response.content.decode()
    assert "does not work" in content and "contact your practice" in content


def test_a_revoked_link_says_it_no_longer_works(client, jose_invited):
    invitation, token = jose_invited
    invitation.revoke(NOW, reason=RevokeReason.RESENT)
    response = client.get(register_url(token))
    assert response.status_code == 410 and "no longer works" in response.content.decode()


@pytest.mark.parametrize(
    "wrong",
    [
        {"last_name": "Nunez"},
        {"date_of_birth": "01/30/1975"},
        {"last_name": "Smith", "date_of_birth": "1990-01-01"},
    ],
)
def test_every_wrong_answer_gets_the_same_message(client, jose_invited, wrong):
    invitation, token = jose_invited
    response = client.post(register_url(token), jose_answers(**wrong))
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [IDENTITY_MISMATCH]
    assert not response.context["form"].has_error("last_name")
    assert not response.context["form"].has_error("date_of_birth")
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 1
    assert not User.objects.exists()


def test_five_wrong_answers_void_the_link(client, jose_invited):
    invitation, token = jose_invited
    for attempt in range(MAX_FAILED_ATTEMPTS - 1):
        assert client.post(register_url(token), jose_answers(last_name="Wrong")).status_code == 400
    fifth = client.post(register_url(token), jose_answers(last_name="Wrong"))
    assert fifth.status_code == 410 and "no longer works" in fifth.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED
    assert invitation.revoke_reason == RevokeReason.TOO_MANY_ATTEMPTS
    # Even the right answers cannot use it now.
    assert client.post(register_url(token), jose_answers()).status_code == 410
    assert not User.objects.exists()


def test_password_rules_apply_and_do_not_count_as_wrong_answers(client, jose_invited):
    invitation, token = jose_invited
    response = client.post(register_url(token), jose_answers(password1="12345678", password2="12345678", last_name="Wrong"))
    assert response.status_code == 400
    assert response.context["form"].has_error("password1")
    assert not response.context["form"].non_field_errors()  # identity not even checked
    mismatch = client.post(register_url(token), jose_answers(password2="something else 42"))
    assert mismatch.context["form"].has_error("password2")
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 0


def test_usernames_cannot_collide_with_any_account(client, jose_invited):
    User.objects.create_user("frontdesk", is_staff=True)
    invitation, token = jose_invited
    response = client.post(register_url(token), jose_answers(username="FrontDesk"))
    assert response.context["form"].has_error("username")
    response = client.post(register_url(token), jose_answers(username="ann@example.com"))
    assert response.context["form"].has_error("username")  # never an email-shaped staff login


def test_posts_are_rate_limited_per_client_address(client, jose_invited):
    from portal.pages.registration import REGISTER_LIMIT

    invitation, token = jose_invited
    for _ in range(REGISTER_LIMIT[0]):
        assert client.post(register_url("unknown-token"), jose_answers()).status_code == 404
    blocked = client.post(register_url(token), jose_answers())
    assert blocked.status_code == 429
    assert not User.objects.exists()
    # Another address is not affected.
    assert client.post(register_url(token), jose_answers(), REMOTE_ADDR="10.0.0.9").status_code == 302


def test_a_family_sharing_one_email_each_register_their_own_record(client, jose_invited):
    practice = PracticeFactory()
    parent = PatientFactory(practice=practice, first_name="Maria", last_name="Silva", email="silva.family@example.com",
                            date_of_birth=datetime.date(1970, 2, 2))
    child = PatientFactory(practice=practice, first_name="Ana", last_name="Silva", email="silva.family@example.com",
                           date_of_birth=datetime.date(2010, 6, 6))
    parent_inv, parent_token = invitation_with_token(patient=parent)
    child_inv, child_token = invitation_with_token(patient=child)

    # The child's link does not accept the parent's birth date.
    wrong = client.post(register_url(child_token), jose_answers(last_name="Silva", date_of_birth="1970-02-02", username="maria.s"))
    assert wrong.status_code == 400

    assert client.post(register_url(parent_token), jose_answers(last_name="silva", date_of_birth="1970-02-02", username="maria.s")).status_code == 302
    client.logout()
    assert client.post(register_url(child_token), jose_answers(last_name="SILVA", date_of_birth="2010-06-06", username="ana.s")).status_code == 302
    client.logout()

    parent.refresh_from_db()
    child.refresh_from_db()
    assert parent.portal_user.username == "maria.s" and child.portal_user.username == "ana.s"
    assert parent.portal_user.email == child.portal_user.email == "silva.family@example.com"
    for username, first_name in (("maria.s", "Maria"), ("ana.s", "Ana")):
        assert client.login(username=username, password="correct horse battery 42")
        content = client.get(reverse("portal:home")).content.decode()
        assert f"Hello {first_name}" in content
        client.logout()


def test_a_patient_already_registered_cannot_register_again(client, jose_invited):
    invitation, token = jose_invited
    patient = invitation.patient
    patient.portal_user = User.objects.create_user("earlier.account")
    Patient.objects.filter(pk=patient.pk).update(portal_user=patient.portal_user)
    response = client.post(register_url(token), jose_answers())
    assert response.status_code == 410 and "already been used" in response.content.decode()
    assert User.objects.count() == 1


def test_a_link_used_concurrently_gets_the_used_page_not_an_error(client, jose_invited, monkeypatch):
    invitation, token = jose_invited
    from invitations import services

    real_register = services.register

    def someone_else_first(inv, **kwargs):
        # Between this request's checks and its registration, another tab registered.
        real_register(Invitation.objects.get(pk=inv.pk), username="other.tab", password="correct horse battery 42", now=NOW)
        return real_register(inv, **kwargs)

    monkeypatch.setattr(services, "register", someone_else_first)
    response = client.post(register_url(token), jose_answers())
    assert response.status_code == 410 and "already been used" in response.content.decode()
    assert list(User.objects.values_list("username", flat=True)) == ["other.tab"]


def test_browsers_posting_with_a_null_origin_pass_csrf_but_the_token_is_still_required(jose_invited):
    """Under `Referrer-Policy: no-referrer` browsers send `Origin: null` with the form."""
    from django.test import Client

    invitation, token = jose_invited
    browser = Client(enforce_csrf_checks=True)
    browser.get(register_url(token))
    csrf = browser.cookies["csrftoken"].value
    forged = browser.post(register_url(token), jose_answers(), HTTP_ORIGIN="null")
    assert forged.status_code == 403  # no CSRF token in the form
    assert not User.objects.exists()
    response = browser.post(register_url(token), {**jose_answers(), "csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="null")
    assert response.status_code == 302
    assert User.objects.filter(username="jose.n").exists()


def test_another_sites_origin_is_still_refused(jose_invited):
    from django.test import Client

    invitation, token = jose_invited
    browser = Client(enforce_csrf_checks=True)
    browser.get(register_url(token))
    csrf = browser.cookies["csrftoken"].value
    response = browser.post(register_url(token), {**jose_answers(), "csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403


def test_opening_links_is_rate_limited_too(client, jose_invited):
    from portal.pages.registration import OPEN_LINK_LIMIT

    invitation, token = jose_invited
    for i in range(OPEN_LINK_LIMIT[0]):
        client.get(register_url(f"guess-{i}"))
    assert client.get(register_url(token)).status_code == 429
    assert not invitation.events.exists()


# -- what a link holder can learn --------------------------------------------------------------


def test_a_taken_username_is_told_only_once_the_identity_matched(client, jose_invited):
    """Anyone holding a link could otherwise probe which usernames exist, uncounted."""
    invitation, token = jose_invited
    User.objects.create_user("jose.n")
    response = client.post(register_url(token), jose_answers(last_name="Wrong"))
    assert response.status_code == 400
    form = response.context["form"]
    assert form.non_field_errors() == [IDENTITY_MISMATCH] and "username" not in form.errors
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 1  # and the try was counted

    response = client.post(register_url(token), jose_answers())
    assert response.context["form"].errors["username"] == ["That username is taken; choose another."]
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 1 and invitation.status == Status.SENT


def test_the_username_is_checked_without_regard_to_case(client, jose_invited):
    invitation, token = jose_invited
    User.objects.create_user("jose.n")
    response = client.post(register_url(token), jose_answers(username="Jose.N"))
    assert response.context["form"].errors["username"] == ["That username is taken; choose another."]
