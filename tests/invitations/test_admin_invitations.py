"""The invitation admin (scoped list, search, timeline), the invitation email template's admin
(checks, sanitising, who may edit it) and the practice page's request-access address."""

import datetime

import pytest
from django.urls import reverse

from invitations.models import EventKind
from patients.models import Role
from tests.clock import NOW
from tests.factories import PatientFactory, staff_member
from tests.invitations.factories import InvitationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def test_the_invitation_admin_is_scoped_and_shows_the_timeline(client_a, practice_a, practice_b):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Ownpatient"))
    own.record(EventKind.LINK_OPENED, now=NOW)
    other = InvitationFactory(patient=PatientFactory(practice=practice_b, last_name="Otherpatient"))
    listing = client_a.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert "Ownpatient" in listing and "Otherpatient" not in listing
    page = client_a.get(reverse("admin:invitations_invitation_change", args=[own.pk]))
    assert page.status_code == 200 and "Opened the link" in page.content.decode()
    assert client_a.get(reverse("admin:invitations_invitation_change", args=[other.pk])).status_code == 404


@pytest.mark.parametrize("term", ["Ownpatient", "own@", "not-a-uuid", ""])
def test_the_invitation_list_search_never_errors(client_a, practice_a, term):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Ownpatient", email="own@example.com"))
    response = client_a.get(reverse("admin:invitations_invitation_changelist"), {"q": term})
    assert response.status_code == 200
    if term in ("Ownpatient", "own@"):
        assert list(response.context["cl"].result_list) == [own]


def test_the_invitation_list_finds_an_invitation_by_its_public_id(client_a, practice_a):
    own = InvitationFactory(patient=PatientFactory(practice=practice_a))
    InvitationFactory(patient=PatientFactory(practice=practice_a))
    response = client_a.get(reverse("admin:invitations_invitation_changelist"), {"q": str(own.public_id)})
    assert list(response.context["cl"].result_list) == [own]


def test_the_invitation_list_shows_run_out_links_as_expired(client_a, practice_a):
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(days=7, seconds=1))
    InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(days=7) + datetime.timedelta(seconds=1))
    content = client_a.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert content.count(">Expired</span>") == 1 and content.count(">Sent</span>") == 1


def test_the_template_admin_requires_the_link_snippet_and_sanitises(client, practice_a):
    admin_user = staff_member(practice_a, Role.ADMIN, username="tpl_admin")
    client.force_login(admin_user)
    url = reverse("admin:invitations_invitationtemplate_add")
    response = client.post(url, {"practice": practice_a.pk, "subject": "Hi", "html_body": "<p>No link {{ x }} [Birthday]</p>"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["html_body"]
    assert any("[Registration Link]" in e for e in errors)
    assert any("[Birthday]" in e for e in errors)
    assert any("{{ }}" in e for e in errors)

    response = client.post(url, {
        "practice": practice_a.pk, "subject": "Welcome from [Practice Name]",
        "html_body": '<p onclick="x()">Hi [First Name]</p><script>alert(1)</script><a href="[Registration Link]">Go</a>',
    })
    assert response.status_code == 302
    template = practice_a.invitation_templates.get(language="en")
    assert "script" not in template.html_body and "onclick" not in template.html_body
    assert 'href="[Registration Link]"' in template.html_body


def test_only_practice_admins_and_managers_edit_the_email_template(client_a, practice_a, practice_b):
    from django.test import Client

    from invitations.models import InvitationTemplate

    add = reverse("admin:invitations_invitationtemplate_add")
    body = {"practice": practice_a.pk, "subject": "Hi", "html_body": "[Registration Link]"}
    assert client_a.get(add).status_code == 403  # front desk
    assert client_a.post(add, body).status_code == 403
    manager = staff_member(practice_a, Role.MANAGER, username="mgr_a")
    client = Client()
    client.force_login(manager)
    assert client.post(add, body).status_code == 302
    template = InvitationTemplate.objects.get(practice=practice_a)
    assert template.updated_by == manager
    other = InvitationTemplate.objects.create(practice=practice_b, subject="B", html_body="[Registration Link]")
    assert client.get(reverse("admin:invitations_invitationtemplate_change", args=[other.pk])).status_code == 404
    # The front desk may read the wording but not change it.
    page = client_a.get(reverse("admin:invitations_invitationtemplate_change", args=[template.pk]))
    assert page.status_code == 200 and 'name="html_body"' not in page.content.decode()


def test_the_practice_page_shows_the_request_access_address_and_whether_it_is_open(client, practice_a):
    client.force_login(staff_member(practice_a, Role.ADMIN, username="prac_admin"))
    page = reverse("admin:patients_practice_change", args=[practice_a.pk])
    address = f"https://portal.example.test/practices/{practice_a.pk}/request-access/"

    closed = client.get(page).content.decode()
    assert f"{address} <small>(closed: tick the box above to open it)</small>" in closed
    assert f'href="{address}"' not in closed

    practice_a.self_signup_enabled = True
    practice_a.save()
    opened = client.get(page).content.decode()
    assert f'<a href="{address}" target="_blank" rel="noopener">{address}</a>' in opened
    assert "(closed: tick the box" not in opened
