"""The public "Request portal access" page: match, no match, one answer for all, rate limits."""

import datetime
import re

import pytest
from django.core import mail
from django.urls import reverse

from invitations.models import Source, Status
from patients.models import Patient
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen", "eager_celery")]


@pytest.fixture
def self_signup_practice():
    return PracticeFactory(name="Maple Street Dental", self_signup_enabled=True)


@pytest.fixture
def chart(self_signup_practice):
    return PatientFactory(
        practice=self_signup_practice, first_name="Renée", last_name="Dubois", date_of_birth=datetime.date(1988, 8, 8),
        email="renee@example.com",
    )


def request_access_url(practice):
    return reverse("portal:request_access", args=[practice.pk])


def form(**overrides):
    data = {
        "first_name": "Renee", "last_name": " DUBOIS ", "date_of_birth": "08/08/1988",
        "email": "Renee@Example.com", "zip_code": "02139", "birth_sex": "F",
    }
    data.update(overrides)
    return data


def post(client, practice, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(request_access_url(practice), form(**overrides))


def test_the_page_is_closed_unless_the_practice_turned_it_on(client):
    closed = PracticeFactory(self_signup_enabled=False)
    assert client.get(request_access_url(closed)).status_code == 404
    assert client.post(request_access_url(closed), form()).status_code == 404


def test_the_page_has_labelled_fields(client, self_signup_practice):
    content = client.get(request_access_url(self_signup_practice)).content.decode()
    for field in ("first_name", "last_name", "date_of_birth", "email", "zip_code", "birth_sex"):
        assert f'for="id_{field}"' in content
    assert 'name="viewport"' in content


def test_a_match_invites_the_address_on_file(client, self_signup_practice, chart, django_capture_on_commit_callbacks):
    response = post(client, self_signup_practice, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    invitation = chart.invitations.get()
    assert invitation.source == Source.SELF_SIGNUP and invitation.email == "renee@example.com"
    assert [m.to for m in mail.outbox] == [["renee@example.com"]]
    assert Patient.objects.count() == 1


def test_no_match_creates_an_unverified_chart_and_mails_the_typed_address(client, self_signup_practice, chart, django_capture_on_commit_callbacks):
    response = post(client, self_signup_practice, django_capture_on_commit_callbacks, date_of_birth="1990-01-01", email="new.person@example.com")
    assert response.status_code == 200
    new = Patient.objects.get(email="new.person@example.com")
    assert new.self_signup_unverified and new.practice == self_signup_practice
    assert new.chart_number.startswith("WEB-")
    assert new.invitations.get().status == Status.SENT
    assert [m.to for m in mail.outbox] == [["new.person@example.com"]]
    assert not chart.invitations.exists()


def test_the_email_to_a_typed_address_carries_nothing_the_visitor_typed(client, self_signup_practice, django_capture_on_commit_callbacks):
    """The form lets anyone have the practice email any address: the name they typed (it could be
    "Click www.evil.example to claim your refund") must not ride along."""
    bait = "Click www.evil.example to claim your refund"
    post(client, self_signup_practice, django_capture_on_commit_callbacks, first_name=bait, last_name="Spam", email="victim@example.com")
    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert "Hello there," in message.body and "Hello there," in html
    for part in (message.subject, message.body, html, str(message.message())):
        assert "evil.example" not in part and "Spam" not in part


def test_once_staff_verify_the_chart_the_email_greets_by_name(client, self_signup_practice, django_capture_on_commit_callbacks):
    from invitations import services

    post(client, self_signup_practice, django_capture_on_commit_callbacks, first_name="Odile", email="odile@example.com")
    patient = Patient.objects.get(email="odile@example.com")
    Patient.objects.filter(pk=patient.pk).update(self_signup_unverified=False)
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        services.invite(patient, now=NOW + datetime.timedelta(hours=2), source=Source.RESEND, resend=True)
    assert "Hello Odile," in mail.outbox[0].body


def test_staff_can_filter_unverified_self_sign_ups(client, self_signup_practice, django_capture_on_commit_callbacks):
    from patients.models import Role
    from tests.factories import staff_member

    post(client, self_signup_practice, django_capture_on_commit_callbacks, last_name="Newcomer")
    PatientFactory(practice=self_signup_practice, last_name="Established")
    staff = staff_member(self_signup_practice, Role.FRONT_DESK, username="desk_m")
    client.force_login(staff)
    response = client.get(reverse("admin:patients_patient_changelist") + "?self_signup_unverified__exact=1")
    assert [p.last_name for p in response.context["cl"].result_list] == ["Newcomer"]


def test_every_outcome_gets_the_same_answer(client, self_signup_practice, chart, django_capture_on_commit_callbacks):
    registered = PatientFactory(practice=self_signup_practice, last_name="Member", email="member@example.com", date_of_birth=datetime.date(1970, 1, 1))
    from django.contrib.auth import get_user_model

    registered.portal_user = get_user_model().objects.create_user("member.one")
    registered.save()
    pages = []
    for overrides in (
        {},  # match
        {"email": "stranger@example.com", "last_name": "Stranger"},  # no match
        {"last_name": "Member", "email": "member@example.com", "date_of_birth": "1970-01-01"},  # already registered
        {},  # match again within the hour: nothing sent
    ):
        response = post(client, self_signup_practice, django_capture_on_commit_callbacks, **overrides)
        assert response.status_code == 200
        # The page's forms (the language switch) carry a CSRF token masked anew on every page.
        pages.append(re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode()))
    assert len(set(pages)) == 1
    assert "If we could match your details" in pages[0]
    assert len(mail.outbox) == 2  # the match once, the stranger once


def test_requests_are_rate_limited_per_client_address(client, self_signup_practice, django_capture_on_commit_callbacks):
    from portal.pages.access_requests import ACCESS_REQUEST_LIMIT

    for i in range(ACCESS_REQUEST_LIMIT[0]):
        assert post(client, self_signup_practice, django_capture_on_commit_callbacks, email=f"p{i}@example.com", last_name=f"P{i}").status_code == 200
    blocked = post(client, self_signup_practice, django_capture_on_commit_callbacks, email="late@example.com", last_name="Late")
    assert blocked.status_code == 429
    assert not Patient.objects.filter(email="late@example.com").exists()


def test_one_address_cannot_be_flooded_from_many_client_addresses(client, self_signup_practice, django_capture_on_commit_callbacks):
    from portal.pages.access_requests import ACCESS_REQUEST_EMAIL_LIMIT

    for i in range(ACCESS_REQUEST_EMAIL_LIMIT[0] + 2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                request_access_url(self_signup_practice), form(email="victim@example.com", date_of_birth=f"19{50 + i}-01-01"),
                REMOTE_ADDR=f"10.0.0.{i + 1}",
            )
        assert response.status_code == 200  # the same answer throughout
    assert Patient.objects.filter(email="victim@example.com").count() == ACCESS_REQUEST_EMAIL_LIMIT[0]


def test_errors_are_tied_to_their_fields_for_screen_readers(client, self_signup_practice):
    response = client.post(request_access_url(self_signup_practice), form(email="not-an-address", zip_code="12"))
    assert response.status_code == 400
    content = response.content.decode()
    for field in ("email", "zip_code"):
        assert f'aria-describedby="id_{field}_error"' in content
        assert f'id="id_{field}_error"' in content
    assert not Patient.objects.exists()


def test_an_impossible_birth_date_is_refused_with_a_clear_error(client, self_signup_practice):
    response = client.post(request_access_url(self_signup_practice), form(date_of_birth="2999-01-01"))
    assert response.status_code == 400
    assert "cannot be in the future" in response.content.decode()
    assert not Patient.objects.exists()
