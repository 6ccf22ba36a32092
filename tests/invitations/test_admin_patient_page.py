"""The patient page's portal box: status, expiry and timeline, why no invitation can be sent, and
its invite / resend / revoke buttons (POST only, 404 for another practice's patient)."""

import datetime

import pytest
import time_machine
from django.urls import reverse

from invitations.models import EventKind, Invitation, RevokeReason, Status
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.patient_admin import invitation_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]


def test_the_patient_page_shows_status_expiry_timeline_and_buttons(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(hours=2))
    invitation.record(EventKind.LINK_OPENED, now=NOW)
    response = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk]))
    content = response.content.decode()
    assert ">Sent</span>" in content
    assert "An invitation went to" in content and "The link works until" in content and "March 9, 2026" in content
    assert "cannot be sent" not in content  # a working link out is the good state, not an error
    assert "Invitation timeline" in content and "Opened the link" in content
    assert invitation_url(invitation.patient, "resend") in content
    assert invitation_url(invitation.patient, "revoke") in content


def test_right_after_an_invite_resend_is_not_offered_and_says_when_it_will_be(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(minutes=10))
    content = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk])).content.decode()
    assert invitation_url(invitation.patient, "resend") not in content
    assert "disabled" in content and "Possible from" in content and "less than an hour ago" in content
    assert "cannot be sent" not in content


def test_a_voided_link_can_be_replaced_at_once(client_a, practice_a):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_a), created_at=NOW - datetime.timedelta(minutes=10))
    invitation.revoke(NOW, reason=RevokeReason.TOO_MANY_ATTEMPTS)
    content = client_a.get(reverse("admin:patients_patient_change", args=[invitation.patient.pk])).content.decode()
    assert "Send portal invitation" in content


def test_the_patient_page_explains_why_no_invitation_can_be_sent(client_a, practice_a):
    patient = PatientFactory(practice=practice_a, email_consent=False)
    content = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert "An invitation cannot be sent now" in content
    assert "The patient has not consented to email." in content


def test_a_registered_patients_page_offers_no_invitation_buttons(client_a, one_of_each):
    patient = one_of_each["Activex"]
    content = client_a.get(reverse("admin:patients_patient_change", args=[patient.pk])).content.decode()
    assert ">Registered</span>" in content
    assert invitation_url(patient, "invite") not in content
    assert invitation_url(patient, "resend") not in content


def test_the_page_buttons_invite_resend_and_revoke(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    assert client_a.post(invitation_url(patient, "invite")).status_code == 302
    first = patient.invitations.get()
    assert first.status == Status.PENDING

    too_soon = client_a.post(invitation_url(patient, "resend"))
    assert "less than an hour ago" in too_soon.content.decode()
    frozen_later = NOW + datetime.timedelta(hours=2)
    with time_machine.travel(frozen_later, tick=False):
        confirm_page = client_a.post(invitation_url(patient, "resend"))
        assert confirm_page.status_code == 200 and "will get a new link" in confirm_page.content.decode()
        first.refresh_from_db()
        assert first.status == Status.PENDING  # asking changes nothing
        assert client_a.post(invitation_url(patient, "resend"), {"confirm": "yes"}).status_code == 302
    first.refresh_from_db()
    assert first.revoke_reason == RevokeReason.RESENT
    second = patient.invitations.get(status=Status.PENDING)

    confirm = client_a.post(invitation_url(patient, "revoke"))
    assert confirm.status_code == 200 and "Yes, revoke 1 link" in confirm.content.decode()
    assert client_a.post(invitation_url(patient, "revoke"), {"confirm": "yes"}).status_code == 302
    second.refresh_from_db()
    assert second.status == Status.REVOKED


def test_the_page_buttons_are_post_only(client_a, practice_a):
    patient = PatientFactory(practice=practice_a)
    assert client_a.get(invitation_url(patient, "invite")).status_code == 405
    assert not patient.invitations.exists()


@pytest.mark.parametrize("operation", ["invite", "resend", "revoke"])
def test_the_page_buttons_give_404_for_another_practices_patient(client_a, practice_b, operation):
    invitation = InvitationFactory(patient=PatientFactory(practice=practice_b))
    response = client_a.post(invitation_url(invitation.patient, operation), {"confirm": "yes"})
    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT
    assert Invitation.objects.count() == 1
