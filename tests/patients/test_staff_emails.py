"""The emails staff accounts get: a welcome with a link to choose a password when a practice admin
adds a new team member, and the password-reset email in the product's words."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from patients.models import Membership, Role
from patients.staff_auth import reset
from tests.factories import PracticeFactory, staff_member

pytestmark = pytest.mark.django_db
LINK = re.compile(r"https?://\S+/admin/reset/\S+/")


def add_member(client, practice, email, role=Role.FRONT_DESK, **names):
    return client.post(
        reverse("admin:patients_membership_add"),
        {"practice": practice.pk, "email": email, "role": role, **names},
        follow=True,
    )


def test_a_new_team_member_is_emailed_a_link_to_choose_their_password(client, eager_celery, django_capture_on_commit_callbacks, settings):
    settings.PORTAL_BASE_URL = "https://portal.maple.example"
    practice = PracticeFactory(name="Maple Street Dental")
    client.force_login(staff_member(practice, Role.ADMIN, username="morgan", first_name="Morgan", last_name="Lee"))
    with django_capture_on_commit_callbacks(execute=True):
        response = add_member(client, practice, "Sam.Desk@Example.com", first_name="Sam")
    assert "we are emailing them a link to choose their password" in response.content.decode()
    [message] = mail.outbox
    assert message.to == ["sam.desk@example.com"]
    assert message.subject == "You have been added to Maple Street Dental on Practice Portal"
    assert "Morgan Lee added you to Maple Street Dental's team on Practice Portal, as Front desk." in message.body
    assert "Your username is sam.desk@example.com." in message.body and "works once, for 3 days" in message.body
    link = LINK.search(message.body).group()
    assert link.startswith("https://portal.maple.example/admin/reset/")

    # The link works: the new member chooses a password and signs in with it.
    client.logout()
    form_page = client.get(link.replace("https://portal.maple.example", ""), follow=True)
    assert form_page.status_code == 200
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": "A-long-new-pass-2026", "new_password2": "A-long-new-pass-2026"})
    assert done.status_code == 302
    assert get_user_model().objects.get(username="sam.desk@example.com").check_password("A-long-new-pass-2026")


def test_someone_with_an_account_is_told_which_practice_they_joined(client, eager_celery, django_capture_on_commit_callbacks):
    maple, river = PracticeFactory(name="Maple Street Dental"), PracticeFactory(name="Riverside Aesthetics")
    riley = staff_member(maple, Role.MANAGER, username="riley", email="riley@staff.example")
    client.force_login(staff_member(river, Role.ADMIN, username="river_admin"))
    with django_capture_on_commit_callbacks(execute=True):
        response = add_member(client, river, "riley@staff.example", role=Role.ADMIN)
    assert "can now work with Riverside Aesthetics" in response.content.decode()
    assert Membership.objects.filter(user=riley, practice=river).exists()
    [message] = mail.outbox
    assert "added you to Riverside Aesthetics's team on Practice Portal, as Practice admin." in message.body
    assert not LINK.search(message.body) and "Sign in as usual" in message.body


def test_the_staff_password_reset_email_speaks_for_the_product(settings):
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8052"
    practice = PracticeFactory()
    staff_member(practice, Role.FRONT_DESK, username="frankie", first_name="Frankie", email="frankie@staff.example")
    assert reset.send_reset_email("frankie@staff.example") == 1
    [message] = mail.outbox
    assert message.subject == "Reset your Practice Portal password"
    assert message.body.startswith("Hello Frankie,")
    assert "The 127.0.0.1:8052 team" not in message.body and "Thanks for using our site" not in message.body
    assert LINK.search(message.body).group().startswith("http://127.0.0.1:8052/admin/reset/")
    assert message.body.rstrip().endswith("Practice Portal")
