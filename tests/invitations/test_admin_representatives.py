"""Representatives on the staff side: the patient page's box, adding one with the age bands' checks,
invite / resend / revoke, "Why no invite?"'s section, the lists, and tenant scoping with the other
practice's ids."""

import pytest
from django.core import mail
from django.urls import reverse

from invitations.models import Invitation, RevokeReason, Status
from patients.audit import AuditAction, AuditEntry
from patients.models import Role
from patients.models.representatives import AccessLevel, AccessStatus, Relationship, Representative, RepresentativeAccess
from tests.clock import NOW
from tests.factories import PracticeFactory, staff_member
from tests.family_factories import AccessFactory, RepresentativeFactory, adult, child, teenager

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def add_url(patient):
    return reverse("admin:patients_patient_add_representative", args=[patient.pk])


def action_url(patient, access, operation):
    return reverse("admin:patients_patient_representative", args=[patient.pk, access.pk, operation])


def new_parent(**overrides):
    data = {"first_name": "Elena", "last_name": "Ruiz", "email": "elena@family.example", "mobile_phone": "",
            "relationship": Relationship.PARENT, "level": AccessLevel.FULL, "send_by": "email"}
    data.update(overrides)
    return data


def test_the_front_desk_adds_a_parent_to_a_child_and_invites_them_at_once(
    client_a, practice_a, django_capture_on_commit_callbacks, eager_celery,
):
    kid = child(practice_a)
    page = client_a.get(reverse("admin:patients_patient_change", args=[kid.pk])).content.decode()
    assert "No parent, guardian or caregiver on file" in page and add_url(kid) in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(add_url(kid), new_parent())
    assert response.status_code == 302
    access = RepresentativeAccess.objects.get(patient=kid)
    assert access.relationship == Relationship.PARENT and access.ends_at_majority and access.status == AccessStatus.INVITED
    invitation = Invitation.objects.get(access=access)
    assert invitation.email == "elena@family.example" and invitation.status == Status.SENT
    assert mail.outbox[-1].to == ["elena@family.example"]
    page = client_a.get(reverse("admin:patients_patient_change", args=[kid.pk])).content.decode()
    assert "Elena Ruiz" in page and "Parent or guardian" in page and "Revoke access" in page
    assert AuditEntry.objects.filter(patient=kid, action=AuditAction.REPRESENTATIVE_GRANTED).exists()
    assert AuditEntry.objects.filter(patient=kid, action=AuditAction.INVITE).exists()


def test_a_sibling_is_linked_to_the_same_parent(client_a, practice_a):
    first = child(practice_a, last_name="Ruiz")
    second = child(practice_a, first_name="Lucas", last_name="Ruiz")
    access = AccessFactory(patient=first, representative=RepresentativeFactory(practice=practice_a, first_name="Elena", last_name="Ruiz"))
    page = client_a.get(add_url(second)).content.decode()
    assert "Elena R." in page  # offered as the family's representative
    response = client_a.post(add_url(second), {"existing": access.representative.pk, "relationship": Relationship.PARENT,
                                                "level": AccessLevel.FULL, "send_by": ""})
    assert response.status_code == 302
    assert Representative.objects.count() == 1
    assert set(RepresentativeAccess.objects.values_list("patient_id", flat=True)) == {first.pk, second.pk}


@pytest.mark.parametrize("who, data, field, words", [
    ("teen", {"level": AccessLevel.FULL}, "full_access_reason", "limited access unless you record why"),
    ("adult", {"relationship": Relationship.CAREGIVER}, "patient_consent", "needs the patient's consent"),
    ("adult", {"relationship": Relationship.COURT_GUARDIAN}, "court_document", "Note the court order"),
    ("child", {"first_name": "", "email": ""}, "first_name", "Enter the representative's name"),
    ("child", {"email": "", "mobile_phone": ""}, "email", "email address or a mobile number"),
    ("child", {"mobile_phone": "555-0123"}, "mobile_phone", "area code"),
])
def test_the_age_bands_and_the_contact_are_checked_on_the_form(client_a, practice_a, who, data, field, words):
    patient = {"child": child, "teen": teenager, "adult": adult}[who](practice_a)
    response = client_a.post(add_url(patient), new_parent(**data))
    assert response.status_code == 400
    assert words in " ".join(response.context["form"].errors.get(field, []))
    assert not RepresentativeAccess.objects.exists() and not Representative.objects.exists()


def test_resend_and_revoke_from_the_patient_page(client_a, practice_a):
    kid = child(practice_a)
    access = AccessFactory(patient=kid)
    assert client_a.post(action_url(kid, access, "invite")).status_code == 302
    first = Invitation.objects.get(access=access)
    assert client_a.post(action_url(kid, access, "revoke"), {"note": "Custody order"}).status_code == 302
    access.refresh_from_db()
    first.refresh_from_db()
    assert access.status == AccessStatus.REVOKED and access.end_note == "Custody order"
    assert first.status == Status.REVOKED and first.revoke_reason == RevokeReason.ACCESS_ENDED
    entry = AuditEntry.objects.get(patient=kid, action=AuditAction.REPRESENTATIVE_REVOKED)
    assert "Custody" not in entry.summary and entry.actor.username == "frontdesk_a"


def test_the_other_practices_patients_and_accesses_are_404(client_a, practice_a):
    other = PracticeFactory()
    theirs = child(other)
    their_access = AccessFactory(patient=theirs)
    ours = child(practice_a)
    assert client_a.get(add_url(theirs)).status_code == 404
    assert client_a.post(add_url(theirs), new_parent()).status_code == 404
    assert client_a.post(action_url(theirs, their_access, "invite")).status_code == 404
    assert client_a.post(action_url(ours, their_access, "revoke")).status_code == 404  # another patient's access
    their_access.refresh_from_db()
    assert their_access.status == AccessStatus.INVITED and not Invitation.objects.filter(access=their_access).exists()
    lists = (reverse("admin:patients_representativeaccess_changelist"), reverse("admin:patients_representative_changelist"))
    for url in lists:
        assert their_access.representative.last_name not in client_a.get(url).content.decode()
    assert client_a.get(reverse("admin:patients_representativeaccess_change", args=[their_access.pk])).status_code == 404
    assert client_a.get(reverse("admin:patients_representative_change", args=[their_access.representative.pk])).status_code == 404


def test_a_viewer_cannot_add_or_revoke(client, practice_a):
    viewer = staff_member(practice_a, Role.VIEWER, username="viewer_a")
    client.force_login(viewer)
    kid = child(practice_a)
    access = AccessFactory(patient=kid)
    assert client.get(add_url(kid)).status_code == 403
    assert client.post(action_url(kid, access, "revoke")).status_code == 403
    page = client.get(reverse("admin:patients_patient_change", args=[kid.pk])).content.decode()
    assert add_url(kid) not in page


def test_why_no_invite_has_a_section_per_representative(client_a, practice_a):
    kid = child(practice_a)
    AccessFactory(patient=kid, representative=RepresentativeFactory(practice=practice_a, first_name="Elena", email=""))
    page = client_a.get(reverse("admin:patients_patient_diagnostics", args=[kid.pk])).content.decode()
    assert "Representatives' invitations" in page and "Elena" in page
    assert "The representative has no email address." in page
    assert "invite a parent or guardian" in page  # the child's own check says where to go


def test_a_representatives_changed_address_revokes_their_open_link(client_a, practice_a):
    kid = child(practice_a)
    access = AccessFactory(patient=kid)
    client_a.post(action_url(kid, access, "invite"))
    rep = access.representative
    url = reverse("admin:patients_representative_change", args=[rep.pk])
    response = client_a.post(url, {"first_name": rep.first_name, "last_name": rep.last_name, "email": "new@family.example",
                                    "mobile_phone": "", "sms_consent": ""})
    assert response.status_code == 302
    invitation = Invitation.objects.get(access=access)
    assert invitation.status == Status.REVOKED and invitation.revoke_reason == RevokeReason.EMAIL_CHANGED


def test_the_invitation_list_says_who_each_invitation_went_to(client_a, practice_a):
    kid = child(practice_a)
    access = AccessFactory(patient=kid, representative=RepresentativeFactory(practice=practice_a, first_name="Elena", last_name="Ruiz"))
    client_a.post(action_url(kid, access, "invite"))
    page = client_a.get(reverse("admin:invitations_invitation_changelist")).content.decode()
    assert "Elena R. (parent or guardian)" in page
