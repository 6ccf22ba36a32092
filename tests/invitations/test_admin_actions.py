"""Inviting, resending and revoking from the patient list (confirmations, skipped patients,
another practice's patients out of reach, the audit trail), and the links an email change or an
opt-out revokes."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from invitations.models import EventKind, Invitation, RevokeReason, Source, Status
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import (
    add_patient_data,
    invitation_url,
    messages_of,
    post_action,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def test_the_invite_action_invites_the_eligible_and_lists_the_skipped(client_a, practice_a):
    good = PatientFactory(practice=practice_a)
    no_email = PatientFactory(practice=practice_a, email="", last_name="Noemail")
    response = post_action(client_a, "invite_selected", [good, no_email])
    assert response.status_code == 302
    assert good.invitations.filter(status=Status.PENDING, source=Source.MANUAL).exists()
    assert not no_email.invitations.exists()
    messages = messages_of(response)
    assert "Invited 1 patient." in messages
    assert any("Skipped 1" in t and "Noemail" in t and "Email address is missing." in t for t in messages)


def test_resend_asks_for_confirmation_listing_who_gets_a_link_and_who_is_skipped(
    client_a, practice_a, eager_celery, django_capture_on_commit_callbacks
):
    sent = InvitationFactory(patient=PatientFactory(practice=practice_a, last_name="Willget"),
                             created_at=NOW - datetime.timedelta(hours=2))
    deceased = PatientFactory(practice=practice_a, last_name="Skipme", deceased=True)
    response = post_action(client_a, "resend_selected", [sent.patient, deceased])
    assert response.status_code == 200
    assert [p.pk for p in response.context["will_send"]] == [sent.patient.pk]
    assert [(p.pk, why) for p, why in response.context["will_skip"]] == [(deceased.pk, "The patient is marked deceased.")]
    assert "Willget" in response.content.decode()
    sent.refresh_from_db()
    assert sent.status == Status.SENT  # nothing changed yet

    with django_capture_on_commit_callbacks(execute=True):  # several patients: sent by a worker
        response = post_action(client_a, "resend_selected", [sent.patient, deceased], confirm="yes")
    assert response.status_code == 302 and "/progress/" in response["Location"]
    sent.refresh_from_db()
    assert sent.status == Status.REVOKED and sent.revoke_reason == RevokeReason.RESENT
    new = sent.patient.invitations.get(status=Status.SENT)
    assert new.source == Source.BULK_RESEND and new.pk != sent.pk
    assert not deceased.invitations.exists()


def test_the_revoke_action_revokes_open_links(client_a, practice_a, front_desk_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a))
    confirm = post_action(client_a, "revoke_selected", [invitation.patient])
    assert confirm.status_code == 200 and "will stop working at once" in confirm.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT  # asking changes nothing
    response = post_action(client_a, "revoke_selected", [invitation.patient], confirm="yes")
    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED and invitation.revoke_reason == RevokeReason.STAFF
    assert invitation.events.get(kind=EventKind.REVOKED).actor == front_desk_a


def test_actions_cannot_reach_another_practices_patients(client_a, practice_b):
    other = PatientFactory(practice=practice_b)
    open_b = InvitationFactory(patient=PatientFactory(practice=practice_b))
    post_action(client_a, "invite_selected", [other])
    post_action(client_a, "revoke_selected", [open_b.patient], confirm="yes")
    post_action(client_a, "resend_selected", [open_b.patient], confirm="yes")
    assert not other.invitations.exists()
    open_b.refresh_from_db()
    assert open_b.status == Status.SENT
    assert Invitation.objects.count() == 1


def test_invitation_actions_are_in_the_staff_audit_trail(client_a, practice_a, front_desk_a):
    from patients.audit import AuditAction, AuditEntry

    patient = PatientFactory(practice=practice_a, last_name="Audited")
    client_a.post(invitation_url(patient, "invite"))
    client_a.post(invitation_url(patient, "revoke"), {"confirm": "yes"})
    entries = list(AuditEntry.objects.order_by("id").values_list("action", "patient", "actor"))
    assert entries == [
        (AuditAction.INVITE, patient.pk, front_desk_a.pk),
        (AuditAction.REVOKE, patient.pk, front_desk_a.pk),
    ]
    assert all("Audited" not in e.summary for e in AuditEntry.objects.all())


def test_changing_the_email_in_the_admin_revokes_the_link_for_good(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a, email="old@example.com"))
    patient = invitation.patient
    data = add_patient_data(practice_a, chart_number=patient.chart_number, first_name=patient.first_name,
                            last_name=patient.last_name, date_of_birth="1980-05-17", email="new@example.com",
                            send_invitation=None)
    response = client_a.post(reverse("admin:patients_patient_change", args=[patient.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED
    assert invitation.revoke_reason == RevokeReason.EMAIL_CHANGED
    assert any("revoked" in t for t in messages_of(response))
    # The old link can never be re-sent: a resend makes a new link to the new address.
    later = NOW + datetime.timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        client_a.post(invitation_url(patient, "resend"), {"confirm": "yes"})
    assert patient.invitations.get(status=Status.PENDING).email == "new@example.com"
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED


def test_adding_an_address_to_the_opt_out_list_revokes_its_open_links(client_a, practice_a, practice_b):
    mine = InvitationFactory(patient=PatientFactory(practice=practice_a, email="family@example.com"))
    sibling = InvitationFactory(patient=PatientFactory(practice=practice_a, email="family@example.com"))
    elsewhere = InvitationFactory(patient=PatientFactory(practice=practice_b, email="family@example.com"))
    response = client_a.post(
        reverse("admin:patients_emailoptout_add"),
        {"practice": practice_a.pk, "email": "Family@Example.com", "reason": "patient_request"},
    )
    assert response.status_code == 302
    for invitation in (mine, sibling):
        invitation.refresh_from_db()
        assert (invitation.status, invitation.revoke_reason) == (Status.REVOKED, RevokeReason.OPTED_OUT)
    elsewhere.refresh_from_db()
    assert elsewhere.status == Status.SENT
