"""The failed-invitations list: reasons shown, Resend from there, tenant-scoped."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse

from invitations.models import Invitation, Status
from invitations.tasks import send_invitation
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_invitation_a(practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a, first_name="Fay"), created_at=NOW)
    invitation.fail(NOW, reason="The email service reported: bounced (550 mailbox unavailable)")
    return invitation


def test_failed_filter_lists_the_reason(client_a, failed_invitation_a, practice_b):
    theirs = InvitationFactory(patient=PatientFactory(practice=practice_b))
    theirs.fail(NOW, reason="THEIR-REASON")
    content = client_a.get(reverse("admin:invitations_invitation_changelist") + "?status__exact=failed").content.decode()
    assert "550 mailbox unavailable" in content
    assert "THEIR-REASON" not in content


def test_resend_from_the_failed_list_confirms_then_sends(client_a, failed_invitation_a, django_capture_on_commit_callbacks):
    patient = failed_invitation_a.patient
    patient.email = "corrected@example.com"
    patient.save()
    response = client_a.post(
        reverse("admin:invitations_invitation_changelist"),
        {"action": "resend_to_patients", ACTION_CHECKBOX_NAME: [failed_invitation_a.pk]},
    )
    assert response.status_code == 200
    assert "Resend portal invitations?" in response.content.decode()
    assert Invitation.objects.filter(patient=patient).count() == 1  # nothing sent before confirming
    with django_capture_on_commit_callbacks() as callbacks:
        response = client_a.post(
            reverse("admin:patients_patient_changelist"),
            {"action": "resend_selected", ACTION_CHECKBOX_NAME: [patient.pk], "confirm": "yes"},
        )
    assert response.status_code == 302
    assert len(callbacks) == 1  # the send is enqueued after commit; run it as the worker would
    latest = Invitation.objects.filter(patient=patient).latest("created_at")
    assert send_invitation.run(latest.pk) == "sent"
    latest.refresh_from_db()
    assert latest.email == "corrected@example.com" and latest.status == Status.SENT
    assert [m.to for m in mail.outbox] == [["corrected@example.com"]]


def test_revoke_from_the_invitation_list_is_audited_and_scoped(client_a, practice_a, practice_b, front_desk_a):
    from patients.audit import AuditAction, AuditEntry

    mine = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW)
    theirs = InvitationFactory(patient=PatientFactory(practice=practice_b), created_at=NOW)
    confirm = client_a.post(
        reverse("admin:invitations_invitation_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [mine.pk, theirs.pk]},
    )
    assert confirm.status_code == 200 and confirm.context["selected_ids"] == [mine.patient_id]
    client_a.post(
        reverse("admin:patients_patient_changelist"),
        {"action": "revoke_selected", ACTION_CHECKBOX_NAME: [mine.patient_id, theirs.patient_id], "confirm": "yes"},
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == Status.REVOKED and theirs.status == Status.SENT
    entry = AuditEntry.objects.get(action=AuditAction.REVOKE)
    assert (entry.actor, entry.patient_id) == (front_desk_a, mine.patient_id)
