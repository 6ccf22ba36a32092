"""Family and caregiver access: the age bands in eligibility, granting, inviting a representative with
the guarantees of a patient's own invitation, linking their login, and endings exactly once."""

import datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import ValidationError

from invitations import eligibility, representatives, services
from invitations.models import EventKind, Invitation, RevokeReason, Source, Status
from invitations.patient_status import PortalStatus, with_portal_status
from invitations.vocabulary import SendBy
from patients.audit import AuditAction, AuditEntry
from patients.models import Patient
from patients.models.representatives import (
    AccessLevel,
    AccessNotice,
    AccessStatus,
    EndReason,
    NoticeKind,
    Relationship,
    RepresentativeAccess,
)
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.family_factories import (
    AccessFactory,
    RepresentativeFactory,
    adult,
    born_years_before,
    child,
    teenager,
)
from tests.invitations.test_eligibility import codes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
User = get_user_model()
DAY = datetime.timedelta(days=1)


# -- the age bands in the patient's own rules --------------------------------------------------------


def test_a_child_gets_no_own_invitation_and_is_told_to_invite_a_parent(practice):
    kid = child(practice)
    assert codes(kid) == ["child_no_own_account"]
    assert "parent or guardian" in eligibility.RULES_BY_CODE["child_no_own_account"].message


@pytest.mark.parametrize("days, blocked", [(1, False), (0, False), (-1, True)])
def test_the_own_account_age_counts_from_the_birthday_itself(practice, days, blocked):
    """Born 12 years ago today: 12 today, invitable; a day later: still 11."""
    kid = PatientFactory(practice=practice, date_of_birth=born_years_before(12, days=days))
    assert ("child_no_own_account" in codes(kid)) is blocked


def test_each_practice_sets_its_own_bands(practice):
    practice.own_account_age = 13
    practice.save()
    twelve = PatientFactory(practice=practice, date_of_birth=born_years_before(12, days=30))
    other = PracticeFactory()
    twelve_elsewhere = PatientFactory(practice=other, date_of_birth=born_years_before(12, days=30))
    assert "child_no_own_account" in codes(twelve)
    assert "child_no_own_account" not in codes(twelve_elsewhere)
    counted = eligibility.tally(Patient.objects.filter(pk__in=[twelve.pk, twelve_elsewhere.pk]), now=NOW)
    assert counted.skip_counts["child_no_own_account"] == 1 and counted.eligible == 1


def test_family_access_off_means_no_age_rule(practice):
    practice.family_access_enabled = False
    practice.save()
    assert codes(child(practice)) == []


def test_a_teenagers_invitation_never_goes_to_a_parents_address_or_number(practice):
    teen = teenager(practice, mobile_phone="+16175550111", sms_consent=True)
    AccessFactory(patient=teen, representative=RepresentativeFactory(practice=practice, email=teen.email, mobile_phone="+16175550111"))
    practice.text_invitations_enabled = True
    practice.save()
    assert codes(teen) == ["email_is_representatives", "mobile_is_representatives"]
    message = eligibility.RULES_BY_CODE["email_is_representatives"].message
    assert "Enter the patient's own email" in message


def test_a_teenager_with_their_own_address_is_invited_as_usual(practice):
    teen = teenager(practice)
    AccessFactory(patient=teen)
    assert codes(teen) == []
    outcome = services.invite(teen, now=NOW)
    assert outcome.created and outcome.invitation.email == teen.email


def test_an_address_stays_the_parents_after_their_access_ended(practice):
    """At 18 the parent's access ends; the chart's address is still the parent's: the new adult's own
    invitation must not go there (the account would silently stay with the parent)."""
    grown = adult(practice)
    AccessFactory(patient=grown, status=AccessStatus.ENDED, representative=RepresentativeFactory(practice=practice, email=grown.email))
    assert codes(grown) == ["email_is_representatives"]


def test_the_add_form_rules_agree_for_a_child(practice):
    unsaved = Patient(practice=practice, first_name="Sofia", last_name="Ruiz", date_of_birth=born_years_before(8),
                      zip_code="02139", email="sofia@example.com", birth_sex="F", email_consent=True)
    assert [r.code for r in eligibility.reasons_before_saving(unsaved)] == ["child_no_own_account"]
    unsaved.save()
    assert codes(unsaved) == ["child_no_own_account"]


# -- granting ---------------------------------------------------------------------------------------------


def test_a_teenagers_representative_gets_limited_access_unless_staff_say_why_full(practice):
    teen = teenager(practice)
    rep = RepresentativeFactory(practice=practice)
    assert representatives.default_level(teen, NOW) == AccessLevel.LIMITED
    with pytest.raises(ValidationError) as refused:
        representatives.grant(teen, rep, relationship=Relationship.PARENT, level=AccessLevel.FULL, now=NOW)
    assert "full_access_reason" in refused.value.message_dict
    access = representatives.grant(
        teen, rep, relationship=Relationship.PARENT, level=AccessLevel.FULL, now=NOW, full_access_reason="Medical decisions",
    )
    assert access.level == AccessLevel.FULL and access.ends_at_majority and access.status == AccessStatus.INVITED


def test_an_adults_representative_needs_the_patients_consent_or_a_court_order(practice):
    grown = adult(practice)
    with pytest.raises(ValidationError) as refused:
        representatives.grant(grown, RepresentativeFactory(practice=practice), relationship=Relationship.CAREGIVER,
                              level=AccessLevel.FULL, now=NOW)
    assert "patient_consent" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        representatives.grant(grown, RepresentativeFactory(practice=practice), relationship=Relationship.COURT_GUARDIAN,
                              level=AccessLevel.FULL, now=NOW)
    assert "court_document" in refused.value.message_dict
    guardian = representatives.grant(
        grown, RepresentativeFactory(practice=practice), relationship=Relationship.COURT_GUARDIAN, level=AccessLevel.FULL,
        now=NOW, court_document="Probate court order 2025-114",
    )
    assert guardian.ends_at is None and not guardian.ends_at_majority
    caregiver = representatives.grant(
        grown, RepresentativeFactory(practice=practice), relationship=Relationship.CAREGIVER, level=AccessLevel.LIMITED,
        now=NOW, patient_consent="Signed form on file", ends_at=NOW + 90 * DAY,
    )
    assert caregiver.ends_at == NOW + 90 * DAY
    entries = AuditEntry.objects.filter(action=AuditAction.REPRESENTATIVE_GRANTED, patient=grown)
    assert entries.count() == 2 and "Probate" not in str(list(entries.values_list("summary", "details")))


def test_a_representative_is_linked_to_a_patient_once(practice):
    kid = child(practice)
    rep = RepresentativeFactory(practice=practice)
    representatives.grant(kid, rep, relationship=Relationship.PARENT, level=AccessLevel.FULL, now=NOW)
    with pytest.raises(ValidationError):
        representatives.grant(kid, rep, relationship=Relationship.PARENT, level=AccessLevel.FULL, now=NOW)


# -- inviting a representative ------------------------------------------------------------------------


def test_a_parent_is_invited_for_a_child_with_every_guarantee(practice, django_capture_on_commit_callbacks):
    kid = child(practice)
    access = AccessFactory(patient=kid, representative=RepresentativeFactory(practice=practice, first_name="Elena"))
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = representatives.invite(access, now=NOW, actor=None)
    assert outcome.created and len(callbacks) == 1
    invitation = outcome.invitation
    assert invitation.access_id == access.pk and invitation.patient_id == kid.pk and not invitation.is_latest
    assert invitation.email == access.representative.email
    assert invitation.events.get().kind == EventKind.CREATED
    # The child's own status stays "not invited": the list reads the patient's own invitations.
    assert with_portal_status(Patient.objects.filter(pk=kid.pk), NOW).get().portal_status == PortalStatus.NOT_INVITED
    # One open link per representative: a second invite is refused with the reason, a resend replaces it.
    again = representatives.invite(access, now=NOW)
    assert [r.code for r in again.reasons] == ["representative_open_invitation", "representative_invited_recently"]
    resent = representatives.invite(access, now=NOW + DAY, resend=True)
    assert resent.created
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED and invitation.revoke_reason == RevokeReason.RESENT


def test_the_representatives_email_greets_them_and_names_only_the_childs_first_name(practice):
    kid = child(practice, last_name="Ruiz-Ortega")
    access = AccessFactory(patient=kid, representative=RepresentativeFactory(practice=practice, first_name="Elena"))
    invitation = representatives.invite(access, now=NOW).invitation
    assert services.deliver(invitation.pk, now=NOW) == "sent"
    message = mail.outbox[-1]
    body = message.body + message.alternatives[0][0]
    assert message.to == [access.representative.email]
    assert "Hello Elena" in body and "Sofia" in body
    assert "Ruiz-Ortega" not in body and str(kid.date_of_birth.year) not in body
    assert "Sofia" not in message.subject
    assert message.metadata == {"invitation": str(invitation.public_id)}


def test_a_representative_cannot_be_invited_without_a_usable_address(practice):
    kid = child(practice)
    access = AccessFactory(patient=kid, representative=RepresentativeFactory(practice=practice, email="", mobile_phone=""))
    assert [r.code for r in representatives.invite(access, now=NOW).reasons] == ["representative_missing_email"]
    practice.text_invitations_enabled = True
    practice.save()
    outcome = representatives.invite(access, now=NOW, send_by=SendBy.BOTH)
    assert {"representative_missing_email", "representative_missing_mobile", "representative_no_sms_consent"} <= {
        r.code for r in outcome.reasons
    }


def test_an_adults_representative_without_consent_is_not_invited(practice):
    grown = adult(practice)
    access = AccessFactory(patient=grown, relationship=Relationship.CAREGIVER, ends_at_majority=False)
    assert "adult_without_consent" in [r.code for r in representatives.invite(access, now=NOW).reasons]


def test_the_patients_own_invitation_and_a_representatives_coexist(practice):
    teen = teenager(practice)
    access = AccessFactory(patient=teen, level=AccessLevel.LIMITED)
    assert representatives.invite(access, now=NOW).created
    assert services.invite(teen, now=NOW).created
    # Revoking the patient's links (staff, or a changed address) leaves the parent's alone.
    assert services.revoke_open(teen, now=NOW, reason=RevokeReason.STAFF) == 1
    assert Invitation.objects.open().filter(access=access).count() == 1


# -- linking a representative's login ---------------------------------------------------------------------


def _invited(practice, patient=None, **rep):
    patient = patient or child(practice, last_name="Ruiz")
    access = AccessFactory(patient=patient, representative=RepresentativeFactory(practice=practice, **rep))
    invitation = representatives.invite(access, now=NOW).invitation
    return access, invitation


def _link(invitation, **kwargs):
    values = {"last_name": "ruiz", "date_of_birth": invitation.patient.date_of_birth, "now": NOW, "via": "email",
              "username": "elena.r", "password": "correct horse battery 42", "new_login": True}
    values.update(kwargs)
    return representatives.attempt_link(invitation.pk, **values)


def test_a_parent_creates_their_own_login_never_the_childs(practice):
    access, invitation = _invited(practice, first_name="Elena")
    attempt = _link(invitation)
    assert attempt.outcome == "linked"
    user = attempt.user
    assert user.first_name == "Elena" and not user.is_staff
    access.refresh_from_db()
    assert access.status == AccessStatus.ACTIVE and access.representative.portal_user == user
    assert access.patient.portal_user_id is None  # the child has no account of their own
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED
    assert AuditEntry.objects.filter(action=AuditAction.REPRESENTATIVE_LINKED, patient=access.patient).count() == 1
    assert _link(invitation).outcome == "used"


def test_a_second_child_is_linked_to_the_same_login(practice):
    first_access, first = _invited(practice)
    user = _link(first).user
    second_child = child(practice, first_name="Lucas", last_name="Ruiz", date_of_birth=born_years_before(5))
    second_access = AccessFactory(patient=second_child, representative=RepresentativeFactory(practice=practice))
    second = representatives.invite(second_access, now=NOW).invitation
    assert _link(second, new_login=False, username="Elena.R").outcome == "linked"
    assert [r.patient.first_name for r in representatives.records_of(user, now=NOW)] == ["Lucas", "Sofia"]


def test_wrong_answers_count_and_five_void_the_link(practice):
    _, invitation = _invited(practice)
    for _ in range(4):
        assert _link(invitation, last_name="smith").outcome == "mismatch"
    assert _link(invitation, last_name="smith").outcome == "voided"
    assert _link(invitation).outcome == "voided"


def test_a_wrong_password_for_an_existing_login_counts_like_a_wrong_answer(practice):
    User.objects.create_user("elena.r", password="the-real-one-123")
    _, invitation = _invited(practice)
    assert _link(invitation, new_login=False, password="guess").outcome == "sign_in_failed"
    invitation.refresh_from_db()
    assert invitation.failed_attempts == 1
    assert _link(invitation, new_login=False, password="the-real-one-123").outcome == "linked"


def test_a_taken_username_is_told_only_after_the_identity_matched(practice):
    User.objects.create_user("elena.r", password="x-123456789")
    _, invitation = _invited(practice)
    assert _link(invitation, last_name="smith").outcome == "mismatch"
    assert _link(invitation).outcome == "username_taken"


def test_a_staff_login_cannot_represent(practice):
    staff = User.objects.create_user("desk", password="x-123456789", is_staff=True)
    _, invitation = _invited(practice)
    assert _link(invitation, signed_in_user=staff).outcome == "not_a_portal_login"


def test_a_patient_may_also_represent_with_the_same_login(practice):
    parent = adult(practice, last_name="Ruiz")
    user = User.objects.create_user("rosa", password="x-123456789")
    Patient.objects.filter(pk=parent.pk).update(portal_user=user)
    _, invitation = _invited(practice)
    assert _link(invitation, signed_in_user=user).outcome == "linked"
    records = representatives.records_of(user, now=NOW)
    assert [(r.role, r.patient.first_name) for r in records] == [("self", "Rosa"), ("representative", "Sofia")]


# -- revoking and ending ------------------------------------------------------------------------------------


def test_revoking_stops_the_link_and_the_access_at_once(practice):
    access, invitation = _invited(practice)
    assert representatives.revoke(access, now=NOW, note="Custody changed")
    invitation.refresh_from_db()
    assert invitation.status == Status.REVOKED and invitation.revoke_reason == RevokeReason.ACCESS_ENDED
    assert _link(invitation).outcome == "voided"
    assert not representatives.revoke(access, now=NOW)  # once


def test_an_access_past_its_end_date_is_no_longer_in_force_before_the_job_runs(practice):
    grown = adult(practice)
    access = AccessFactory(patient=grown, relationship=Relationship.CAREGIVER, ends_at_majority=False,
                           patient_consent="form", status=AccessStatus.ACTIVE, ends_at=NOW + DAY)
    user = User.objects.create_user("carer", password="x-123456789")
    access.representative.portal_user = user
    access.representative.save()
    assert [r.patient.pk for r in representatives.records_of(user, now=NOW)] == [grown.pk]
    assert representatives.records_of(user, now=NOW + DAY) == []


@pytest.fixture
def turning_18(practice, settings):
    """A teenager who turns 18 on 2 March 2026 with a linked parent; the teenager's own address."""
    teen = PatientFactory(practice=practice, first_name="Mateo", date_of_birth=datetime.date(2008, 3, 2),
                          email="mateo@own.example")
    access = AccessFactory(patient=teen, level=AccessLevel.LIMITED, status=AccessStatus.ACTIVE)
    return teen, access


def test_parents_access_ends_on_the_18th_birthday_in_the_practices_zone_exactly_once(
    turning_18, django_capture_on_commit_callbacks, eager_celery,
):
    teen, access = turning_18
    # 1 March 23:30 in New York (4:30 UTC on 2 March): not yet.
    with time_machine.travel(datetime.datetime(2026, 3, 2, 4, 30, tzinfo=datetime.timezone.utc), tick=False):
        assert representatives.end_due(now=datetime.datetime(2026, 3, 2, 4, 30, tzinfo=datetime.timezone.utc)) == 0
    access.refresh_from_db()
    assert access.status == AccessStatus.ACTIVE
    with django_capture_on_commit_callbacks(execute=True):
        assert representatives.end_due(now=NOW) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert representatives.end_due(now=NOW + DAY) == 0  # a second run ends nothing
    access.refresh_from_db()
    assert access.status == AccessStatus.ENDED and access.end_reason == EndReason.CAME_OF_AGE
    notices = dict(AccessNotice.objects.filter(access=access).values_list("kind", "to"))
    assert notices == {NoticeKind.ENDED_TO_REPRESENTATIVE: access.representative.email, NoticeKind.ENDED_TO_PATIENT: "mateo@own.example"}
    own = Invitation.objects.own().get(patient=teen)
    assert own.source == Source.CAME_OF_AGE and own.email == "mateo@own.example"
    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert recipients == sorted([access.representative.email, "mateo@own.example", "mateo@own.example"])
    assert AuditEntry.objects.filter(action=AuditAction.REPRESENTATIVE_ENDED, patient=teen).count() == 1


def test_a_notice_is_sent_once_however_often_its_task_runs(turning_18):
    teen, access = turning_18
    RepresentativeAccess.objects.filter(pk=access.pk).end(reason=EndReason.CAME_OF_AGE, now=NOW)
    assert representatives.send_notice(access.pk, NoticeKind.ENDED_TO_REPRESENTATIVE, now=NOW) == "sent"
    assert representatives.send_notice(access.pk, NoticeKind.ENDED_TO_REPRESENTATIVE, now=NOW) == "sent-before"
    assert len(mail.outbox) == 1


def test_two_parents_ending_together_welcome_the_new_adult_once(turning_18, django_capture_on_commit_callbacks, eager_celery):
    teen, first = turning_18
    AccessFactory(patient=teen, level=AccessLevel.LIMITED, status=AccessStatus.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        assert representatives.end_due(now=NOW) == 2
    assert Invitation.objects.own().filter(patient=teen).count() == 1
    assert AccessNotice.objects.filter(access__patient=teen, kind=NoticeKind.ENDED_TO_PATIENT).count() == 1


def test_the_patient_is_not_told_through_a_parents_inbox(practice, django_capture_on_commit_callbacks, eager_celery):
    teen = PatientFactory(practice=practice, date_of_birth=datetime.date(2008, 3, 2), email="family@home.example")
    access = AccessFactory(patient=teen, status=AccessStatus.ACTIVE,
                           representative=RepresentativeFactory(practice=practice, email="family@home.example"))
    with django_capture_on_commit_callbacks(execute=True):
        representatives.end_due(now=NOW)
    assert AccessNotice.objects.get(access=access, kind=NoticeKind.ENDED_TO_PATIENT).to == ""
    # Nor invited there: the new adult's own invitation needs their own address (fixed by staff).
    assert not Invitation.objects.own().filter(patient=teen).exists()


def test_a_caregivers_end_date_reminds_the_patient_once_then_ends(practice, django_capture_on_commit_callbacks, eager_celery):
    grown = adult(practice, email="rosa@own.example")
    access = AccessFactory(patient=grown, relationship=Relationship.CAREGIVER, ends_at_majority=False,
                           patient_consent="form", status=AccessStatus.ACTIVE, ends_at=NOW + 10 * DAY)
    with django_capture_on_commit_callbacks(execute=True):
        representatives.end_due(now=NOW)
        representatives.end_due(now=NOW + DAY)
    assert [m.to for m in mail.outbox] == [["rosa@own.example"]]
    with django_capture_on_commit_callbacks(execute=True):
        assert representatives.end_due(now=NOW + 10 * DAY) == 1
    access.refresh_from_db()
    assert access.status == AccessStatus.ENDED and access.end_reason == EndReason.END_DATE
