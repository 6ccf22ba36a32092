"""Family and caregiver access on the patient's side: a parent registers from a child's invitation and
links a second child to the same login, the switcher, the limited level, revocation on the next
request, visits in the audit trail, and an adult inviting and revoking a caregiver."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from invitations import representatives
from invitations.models import Invitation, Status
from patients.audit import AuditAction, AuditEntry
from patients.models import Patient, Role
from patients.models.representatives import (
    AccessLevel,
    AccessStatus,
    Relationship,
    RepresentativeAccess,
)
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.family_factories import (
    AccessFactory,
    RepresentativeFactory,
    adult,
    born_years_before,
    child,
    teenager,
)
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
User = get_user_model()
PASSWORD = "correct horse battery 42"


def _link_for(access):
    """Invite the representative and return the registration link's token (what the email carried)."""
    invitation = representatives.invite(access, now=NOW).invitation
    from invitations.models import hash_token

    token = f"rep-token-{invitation.pk:06d}-abcdefghijklmnopqrstuvwxyz"
    Invitation.objects.filter(pk=invitation.pk).update(token_hash=hash_token(token), status=Status.SENT, sent_at=NOW)
    return token


def _register_url(token):
    return reverse("portal:register", args=[token])


def _answers(patient, **overrides):
    data = {
        "last_name": patient.last_name, "date_of_birth": patient.date_of_birth.strftime("%m/%d/%Y"),
        "has_login": "no", "username": "elena.r", "password1": PASSWORD, "password2": PASSWORD,
    }
    data.update(overrides)
    return data


@pytest.fixture
def ruiz_children(practice):
    """Two children with one parent on file (two accesses to the same person's two rows)."""
    sofia = child(practice, first_name="Sofia", last_name="Ruiz")
    lucas = child(practice, first_name="Lucas", last_name="Ruiz", date_of_birth=born_years_before(5))
    rep = RepresentativeFactory(practice=practice, first_name="Elena", last_name="Ruiz")
    first = AccessFactory(patient=sofia, representative=rep)
    second = AccessFactory(patient=lucas, representative=rep)
    return sofia, lucas, first, second


def test_a_parent_registers_once_links_the_second_child_and_switches(client, ruiz_children):
    sofia, lucas, first, second = ruiz_children
    token = _link_for(first)
    page = client.get(_register_url(token)).content.decode()
    assert "Sofia" in page and "Set up access" in page
    wrong = client.post(_register_url(token), _answers(sofia, last_name="Smith"))
    assert wrong.status_code == 400 and "error-summary" in wrong.content.decode()
    response = client.post(_register_url(token), _answers(sofia))
    assert response.status_code == 302 and response["Location"] == reverse("portal:home")
    home = client.get(reverse("portal:home")).content.decode()
    assert "Sofia's portal" in home and "parent or guardian" in home
    user = User.objects.get(username="elena.r")
    assert not Patient.objects.filter(portal_user=user).exists()  # never the child's own login

    # The second child's invitation, opened while signed in: confirm the child, no new login.
    token = _link_for(second)
    page = client.get(_register_url(token)).content.decode()
    assert "You are signed in as elena.r" in page
    response = client.post(_register_url(token), {"last_name": "ruiz", "date_of_birth": lucas.date_of_birth.strftime("%m/%d/%Y")})
    assert response.status_code == 302
    home = client.get(reverse("portal:home")).content.decode()
    assert "Lucas's portal" in home and 'name="patient"' in home  # the switcher, both children listed
    assert f'value="{sofia.pk}"' in home and f'value="{lucas.pk}"' in home
    assert client.post(reverse("portal:switch"), {"patient": sofia.pk}).status_code == 302
    assert "Sofia's portal" in client.get(reverse("portal:home")).content.decode()
    visits = AuditEntry.objects.filter(action=AuditAction.REPRESENTATIVE_VISIT, actor=user)
    assert sorted(visits.values_list("patient__first_name", flat=True)) == ["Lucas", "Sofia", "Sofia"]
    assert "Ruiz" not in " ".join(visits.values_list("summary", flat=True))


def test_another_patients_id_in_the_switcher_is_a_404(client, ruiz_children, practice):
    sofia, _, first, _ = ruiz_children
    client.post(_register_url(_link_for(first)), _answers(sofia))
    stranger = PatientFactory(practice=practice)
    other_practice_patient = PatientFactory(practice=PracticeFactory())
    for patient_id in (stranger.pk, other_practice_patient.pk, "abc", ""):
        assert client.post(reverse("portal:switch"), {"patient": patient_id}).status_code == 404
    assert "Sofia's portal" in client.get(reverse("portal:home")).content.decode()


def test_a_representative_signs_in_through_the_portal_and_a_staff_account_does_not(client, ruiz_children, practice):
    sofia, _, first, _ = ruiz_children
    Client().post(_register_url(_link_for(first)), _answers(sofia))
    assert client.post(reverse("portal:login"), {"username": "elena.r", "password": PASSWORD}).status_code == 302
    staff_member(practice, Role.FRONT_DESK, username="desk")
    User.objects.filter(username="desk").update(password=User.objects.get(username="elena.r").password)
    assert Client().post(reverse("portal:login"), {"username": "desk", "password": PASSWORD}).status_code == 200


def test_a_teenagers_parent_sees_the_limited_set_and_is_told_so(client, practice):
    teen = teenager(practice, last_name="Ruiz", email="mateo@own.example", phone="(555) 010-7777")
    access = AccessFactory(patient=teen, level=AccessLevel.LIMITED)
    client.post(_register_url(_link_for(access)), _answers(teen))
    home = client.get(reverse("portal:home")).content.decode()
    assert "limited access" in home.lower()
    for private in ("mateo@own.example", "(555) 010-7777", teen.date_of_birth.strftime("%B")):
        assert private not in home
    assert reverse("portal:email_preferences") not in home
    assert client.get(reverse("portal:email_preferences")).status_code == 404


def test_a_revoked_access_stops_working_on_the_next_request(client, ruiz_children):
    sofia, _, first, _ = ruiz_children
    client.post(_register_url(_link_for(first)), _answers(sofia))
    assert client.get(reverse("portal:home")).status_code == 200
    assert representatives.revoke(first, now=NOW, actor=None)
    response = client.get(reverse("portal:home"))
    assert response.status_code == 403 and "Sofia" not in response.content.decode()


# -- an adult and their caregiver ---------------------------------------------------------------------


@pytest.fixture
def rosa(practice):
    patient = adult(practice, last_name="Alvarez", email="rosa@own.example")
    patient.portal_user = User.objects.create_user("rosa.a", password=PASSWORD)
    patient.save()
    return patient


def test_an_adult_invites_a_caregiver_who_registers_and_is_then_revoked(client, rosa, django_capture_on_commit_callbacks, eager_celery):
    client.post(reverse("portal:login"), {"username": "rosa.a", "password": PASSWORD})
    page = client.get(reverse("portal:caregivers"))
    assert page.status_code == 200 and "Nobody else can see your portal" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:caregivers"), {
            "first_name": "Ana", "last_name": "Alvarez", "email": "ana@family.example", "level": "limited", "ends_on": "2026-06-30",
        })
    assert response.status_code == 302
    access = RepresentativeAccess.objects.get(patient=rosa)
    assert access.granted_by_patient and access.relationship == Relationship.CAREGIVER and access.level == AccessLevel.LIMITED
    assert access.ends_at is not None and access.ends_at.date().isoformat() == "2026-06-30"
    invitation_email = mail.outbox[-1]
    assert invitation_email.to == ["ana@family.example"] and "Hello Ana" in invitation_email.body
    token = re.search(r"/invite/([^/\s]+)/", invitation_email.body).group(1)

    caregiver = Client()
    caregiver.post(_register_url(token), _answers(rosa, username="ana.a"))
    assert "Rosa's portal" in caregiver.get(reverse("portal:home")).content.decode()

    listed = client.get(reverse("portal:caregivers")).content.decode()
    assert "Ana Alvarez" in listed and "limited access" in listed
    assert client.post(reverse("portal:revoke_caregiver", args=[access.pk])).status_code == 302
    access.refresh_from_db()
    assert access.status == AccessStatus.REVOKED and access.end_reason == "patient"
    assert caregiver.get(reverse("portal:home")).status_code == 403  # refused at once
    assert AuditEntry.objects.filter(action=AuditAction.REPRESENTATIVE_REVOKED, patient=rosa).count() == 1


def test_the_caregiver_form_says_what_is_missing(client, rosa):
    client.post(reverse("portal:login"), {"username": "rosa.a", "password": PASSWORD})
    response = client.post(reverse("portal:caregivers"), {"first_name": "Ana", "last_name": "A", "mobile_phone": "617-555-0123", "level": "full"})
    assert response.status_code == 400
    assert "they must agree" in response.content.decode()
    response = client.post(reverse("portal:caregivers"), {"first_name": "Ana", "last_name": "A", "level": "full", "ends_on": "2020-01-01"})
    assert response.status_code == 400 and "after today" in response.content.decode()
    assert not RepresentativeAccess.objects.exists()


def test_only_an_adult_on_their_own_record_manages_caregivers(client, practice, ruiz_children):
    sofia, _, first, _ = ruiz_children
    client.post(_register_url(_link_for(first)), _answers(sofia))
    assert client.get(reverse("portal:caregivers")).status_code == 403  # a parent, on a child's record
    teen = teenager(practice)
    teen.portal_user = User.objects.create_user("mateo", password=PASSWORD)
    teen.save()
    other = Client()
    other.post(reverse("portal:login"), {"username": "mateo", "password": PASSWORD})
    assert other.get(reverse("portal:caregivers")).status_code == 403


def test_an_adult_cannot_revoke_another_patients_access(client, rosa, practice):
    client.post(reverse("portal:login"), {"username": "rosa.a", "password": PASSWORD})
    someone_elses = AccessFactory(patient=child(practice))
    assert client.post(reverse("portal:revoke_caregiver", args=[someone_elses.pk])).status_code == 404
    someone_elses.refresh_from_db()
    assert someone_elses.status == AccessStatus.INVITED


def test_the_patients_own_registration_link_is_unchanged(client, practice):
    """A patient's own invitation still registers the patient (the representative flow is separate)."""
    patient = PatientFactory(practice=practice, last_name="Lee")
    invitation, token = invitation_with_token(patient=patient)
    response = client.post(_register_url(token), {
        "last_name": "lee", "date_of_birth": "05/17/1980", "username": "pat.lee", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.portal_user.username == "pat.lee"
