"""Every reason a patient cannot be invited, one at a time, from the single function."""

import datetime

import pytest
from django.contrib.auth import get_user_model

from invitations import eligibility
from invitations.models import RevokeReason, Status
from patients.models import EmailOptOut, Patient
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db
HOUR = datetime.timedelta(hours=1)
SECOND = datetime.timedelta(seconds=1)


def codes(patient, **kwargs):
    return [reason.code for reason in eligibility.reasons_for(patient, now=NOW, **kwargs)]


def test_an_invitable_patient_has_no_reasons():
    assert codes(PatientFactory()) == []


@pytest.mark.parametrize(
    "field,value,code,words",
    [
        ("first_name", "", "missing_first_name", "First name is missing"),
        ("last_name", "", "missing_last_name", "Last name is missing"),
        ("date_of_birth", None, "missing_date_of_birth", "Date of birth is missing"),
        ("zip_code", "", "missing_zip_code", "ZIP code is missing"),
        ("birth_sex", "", "missing_birth_sex", "Birth sex is missing"),
        ("email_consent", False, "no_consent", "not consented to email"),
        ("deceased", True, "deceased", "deceased"),
    ],
)
def test_it_names_each_patient_field_reason(field, value, code, words):
    patient = PatientFactory(**{field: value})
    reasons = eligibility.reasons_for(patient, now=NOW)
    assert [r.code for r in reasons] == [code]
    assert words in reasons[0].message


def test_it_names_a_missing_email_once():
    assert codes(PatientFactory(email="")) == ["missing_email"]


def test_it_rejects_a_malformed_email_that_bypassed_the_form():
    patient = PatientFactory()
    Patient.objects.filter(pk=patient.pk).update(email="jane.example.com")
    assert codes(patient) == ["invalid_email"]


def test_it_reports_every_reason_at_once():
    patient = PatientFactory(first_name="", zip_code="", email_consent=False, deceased=True)
    assert codes(patient) == ["deceased", "missing_first_name", "missing_zip_code", "no_consent"]


def test_it_reports_practice_switches():
    practice = PracticeFactory(invitations_enabled=False, activation_email_enabled=False)
    assert codes(PatientFactory(practice=practice)) == ["invitations_disabled", "activation_email_disabled"]


def test_it_reports_an_opted_out_address_of_this_practice_only():
    patient = PatientFactory(email="Family@Example.com")
    EmailOptOut.objects.create(practice=PracticeFactory(), email="family@example.com")
    assert codes(patient) == []
    EmailOptOut.objects.create(practice=patient.practice, email="FAMILY@example.com")
    assert codes(patient) == ["opted_out"]


def test_it_reports_a_registered_patient():
    patient = PatientFactory()
    patient.portal_user = get_user_model().objects.create_user("jane.reg")
    patient.save()
    assert codes(patient) == ["registered"]


def test_it_reports_a_hard_bounce_only_while_the_address_is_unchanged():
    patient = PatientFactory(email="old@example.com")
    Patient.objects.filter(pk=patient.pk).update(bounced_email="old@example.com")
    assert codes(patient) == ["hard_bounce"]
    patient.refresh_from_db()
    patient.email = "new@example.com"
    patient.save()
    assert codes(patient) == []


def test_it_refuses_to_mail_again_an_address_that_got_a_working_link_within_the_hour():
    invitation = InvitationFactory(created_at=NOW - HOUR + SECOND)
    assert codes(invitation.patient, for_resend=True) == ["invited_recently"]
    assert codes(invitation.patient) == ["open_invitation", "invited_recently"]


@pytest.mark.parametrize(
    "void",
    [
        lambda i: i.revoke(NOW, reason=RevokeReason.TOO_MANY_ATTEMPTS),
        lambda i: i.fail(NOW, reason="The email service reported: bounced"),
        lambda i: i.revoke(NOW, reason=RevokeReason.STAFF),
    ],
    ids=["voided by five wrong answers", "bounced", "revoked by staff"],
)
def test_a_link_that_can_no_longer_be_used_is_replaceable_at_once(void):
    """The one-hour rule protects an address that just got a working link; it must not stop staff
    replacing one that cannot be used (the README promises they can resend)."""
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(minutes=5))
    void(invitation)
    assert codes(invitation.patient, for_resend=True) == []
    assert codes(invitation.patient) == []


def test_it_allows_a_new_invitation_an_hour_after_the_last():
    invitation = InvitationFactory(created_at=NOW - HOUR - SECOND, status=Status.FAILED)
    assert codes(invitation.patient) == []


def test_it_allows_an_invitation_to_a_corrected_address_within_the_hour():
    invitation = InvitationFactory(created_at=NOW - datetime.timedelta(minutes=5))
    patient = invitation.patient
    patient.email = "corrected@example.com"
    patient.save()  # revokes the old link
    assert codes(patient) == []


def test_it_points_to_resend_when_a_valid_link_exists_and_resend_ignores_it():
    invitation = InvitationFactory(created_at=NOW - HOUR * 2)
    assert codes(invitation.patient) == ["open_invitation"]
    assert codes(invitation.patient, for_resend=True) == []


def test_the_set_based_form_agrees_with_the_single_check():
    practice = PracticeFactory()
    ok = PatientFactory(practice=practice)
    no_email = PatientFactory(practice=practice, email="")
    dead = PatientFactory(practice=practice, deceased=True, email_consent=False)
    EmailOptOut.objects.create(practice=practice, email=ok.email.upper())
    opted = ok
    fine = PatientFactory(practice=practice)
    queryset = Patient.objects.filter(practice=practice)

    assert list(eligibility.eligible(queryset, now=NOW)) == [fine]
    counted = eligibility.tally(queryset, now=NOW)
    assert (counted.considered, counted.eligible) == (4, 1)
    counts = counted.skip_counts
    assert counts["missing_email"] == 1
    assert counts["opted_out"] == 1
    assert counts["deceased"] == 1
    assert counts["no_consent"] == 1
    assert counts["registered"] == 0
    for patient in (opted, no_email, dead, fine):
        single = bool(eligibility.reasons_for(patient, now=NOW))
        assert single == (patient != fine)


def test_one_query_answers_for_one_patient(django_assert_num_queries):
    patient = PatientFactory()
    with django_assert_num_queries(1):
        eligibility.reasons_for(patient, now=NOW)
