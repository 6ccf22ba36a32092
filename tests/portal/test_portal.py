"""The patient portal: sign-in for patients only, password reset, home, email preferences."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from invitations.models import RevokeReason, Status
from patients.models import EmailOptOut, OptOutReason, Role
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "correct horse battery 42"


def registered_patient(username, **fields):
    patient = PatientFactory(**fields)
    patient.portal_user = User.objects.create_user(username, email=patient.email, password=PASSWORD, first_name=patient.first_name)
    patient.save()
    return patient


def login(client, username, password=PASSWORD):
    return client.post(reverse("portal:login"), {"username": username, "password": password})


def test_a_patient_signs_in_and_sees_their_own_details_and_practice_contact():
    practice = PracticeFactory(name="Riverside Aesthetics", contact_phone="(312) 555-0199", contact_email="hello@riverside.example")
    patient = registered_patient("liam.k", practice=practice, first_name="Liam", last_name="Kowalski", phone="(555) 010-9999")
    from django.test import Client

    client = Client()
    response = login(client, "liam.k")
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    content = client.get(reverse("portal:home")).content.decode()
    for text in ("Riverside Aesthetics", "(312) 555-0199", "hello@riverside.example", "Kowalski", "May 17, 1980", "(555) 010-9999"):
        assert text in content
    other = PatientFactory(practice=practice, last_name="Otherperson")
    assert "Otherperson" not in content and other.email not in content


@pytest.mark.parametrize("typed", ["Paula.p", "PAULA.P", " paula.p "])
def test_a_patient_signs_in_however_the_phone_capitalised_the_username(client, typed):
    registered_patient("paula.p")
    assert login(client, typed).status_code == 302


def test_successful_portal_sign_ins_from_one_address_never_count(client):
    from django.test import Client

    from portal.pages.account import LOGIN_LIMIT

    for n in range(LOGIN_LIMIT[0] + 5):  # a family, or a waiting room's tablet
        registered_patient(f"family{n}")
        assert login(Client(), f"family{n}").status_code == 302


def test_staff_cannot_sign_in_to_the_portal(client, practice_a):
    staff_member(practice_a, Role.FRONT_DESK, username="desk", password="pw-for-tests-only")
    response = client.post(reverse("portal:login"), {"username": "desk", "password": "pw-for-tests-only"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "_auth_user_id" not in client.session


def test_a_patient_can_never_reach_the_admin(client):
    registered_patient("pat.one")
    assert login(client, "pat.one").status_code == 302
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    response = client.post(reverse("admin:login"), {"username": "pat.one", "password": PASSWORD})
    assert response.status_code == 200  # refused: not staff
    assert client.get(reverse("admin:patients_patient_changelist")).status_code == 302


def test_a_staff_user_on_the_portal_pages_is_told_they_are_for_patients(client, practice_a, front_desk_a):
    client.force_login(front_desk_a)
    assert client.get(reverse("portal:home")).status_code == 403


def test_portal_pages_need_sign_in(client):
    response = client.get(reverse("portal:home"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login"))


def test_sign_out(client):
    registered_patient("pat.two")
    login(client, "pat.two")
    assert client.post(reverse("portal:logout")).status_code == 302
    assert client.get(reverse("portal:home")).status_code == 302


def test_password_reset_sends_one_email_per_family_account_naming_the_username(
    client, practice_a, front_desk_a, eager_celery, django_capture_on_commit_callbacks
):
    shared = "family@example.com"
    registered_patient("mum.s", practice=practice_a, email=shared, first_name="Mum")
    registered_patient("kid.s", practice=practice_a, email=shared, first_name="Kid")
    front_desk_a.email = shared
    front_desk_a.save()  # a staff account on the same address gets nothing from the portal
    with django_capture_on_commit_callbacks(execute=True):  # a worker sends them, after commit
        response = client.post(reverse("portal:password_reset"), {"email": "Family@Example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 2
    bodies = sorted(m.body for m in mail.outbox)
    assert any('"kid.s"' in b for b in bodies) and any('"mum.s"' in b for b in bodies)
    link = re.search(r"https://portal\.example\.test(/portal/reset/\S+/)", mail.outbox[0].body).group(1)
    username = re.search(r'username "([^"]+)"', mail.outbox[0].body).group(1)
    follow = client.get(link, follow=True)
    assert follow.status_code == 200
    new_password = "a brand new passphrase 7"
    done = client.post(follow.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    assert User.objects.get(username=username).check_password(new_password)


def test_a_patient_stops_all_emails_and_open_links_are_revoked(client):
    patient = registered_patient("stop.me", email="shared@example.com")
    sibling_link = InvitationFactory(patient=PatientFactory(practice=patient.practice, email="shared@example.com"))
    login(client, "stop.me")
    page = client.get(reverse("portal:email_preferences"))
    assert "Stop all emails" in page.content.decode()
    response = client.post(reverse("portal:email_preferences"), {"action": "stop"})
    assert response.status_code == 302
    entry = EmailOptOut.objects.get(practice=patient.practice, email="shared@example.com")
    assert entry.reason == OptOutReason.PATIENT_REQUEST
    sibling_link.refresh_from_db()
    assert (sibling_link.status, sibling_link.revoke_reason) == (Status.REVOKED, RevokeReason.OPTED_OUT)
    assert "does not send email" in client.get(reverse("portal:email_preferences")).content.decode()

    client.post(reverse("portal:email_preferences"), {"action": "resume"})
    assert not EmailOptOut.objects.filter(practice=patient.practice).exists()


def test_a_patient_cannot_undo_an_opt_out_made_for_a_bounce(client):
    patient = registered_patient("bounced.one")
    EmailOptOut.objects.create(practice=patient.practice, email=patient.email, reason=OptOutReason.HARD_BOUNCE)
    login(client, "bounced.one")
    client.post(reverse("portal:email_preferences"), {"action": "resume"})
    assert EmailOptOut.objects.filter(practice=patient.practice, email=patient.email).exists()


def test_login_is_rate_limited(client):
    from portal.pages.account import LOGIN_LIMIT

    registered_patient("limited")
    for _ in range(LOGIN_LIMIT[0]):
        login(client, "limited", password="wrong")
    assert login(client, "limited").status_code == 429


def test_a_new_address_on_the_chart_becomes_the_accounts_reset_address(client, eager_celery, django_capture_on_commit_callbacks):
    patient = registered_patient("moved.away", email="old@example.com")
    patient.email = "new@example.com"
    patient.save()
    patient.portal_user.refresh_from_db()
    assert patient.portal_user.email == "new@example.com"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:password_reset"), {"email": "old@example.com"})
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:password_reset"), {"email": "new@example.com"})
    assert len(mail.outbox) == 1 and '"moved.away"' in mail.outbox[0].body
