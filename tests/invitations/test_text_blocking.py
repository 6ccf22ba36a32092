"""A text that may no longer be sent is not sent, and an email and a text of one invitation never
hold each other up (found in review: a STOP, a withdrawn consent or texts turned off while a text
still waited; an email's temporary error after its text went)."""

import datetime

import pytest

from invitations import services
from invitations.texts import delivery
from invitations.models import EventKind, Invitation, Status, TextStatus
from invitations.models.text_transitions import TEXT_CLAIM_LEASE
from patients.models import SmsOptOut
from tests.clock import NOW
from tests.invitations.text_fixtures import (  # noqa: F401 - fixtures
    MOBILE,
    _twilio_server,
    fresh_sms_rate,
    patient,
    text_files,
    texting_practice,
    twilio,
    written_texts,
)

pytestmark = pytest.mark.django_db


def _both(patient, *, text_status=TextStatus.PENDING, status=Status.PENDING, **fields) -> Invitation:
    """An invitation by email and text as services.invite makes it (no task run)."""
    fields = {"text_claimed_at": None, "created_at": NOW, "expires_at": NOW + datetime.timedelta(days=7), **fields}
    return Invitation.objects.create_latest(
        patient=patient, practice_id=patient.practice_id, email=patient.email, by_email=True, by_text=True,
        text_to=patient.mobile_phone, text_status=text_status, status=status, **fields,
    )


def _reason(invitation) -> str:
    invitation.refresh_from_db()
    return invitation.text_error


# -- a text that may no longer be sent ----------------------------------------------------------


def test_a_stop_fails_the_pending_text_of_an_invitation_that_also_went_by_email(patient, text_files):
    invitation = _both(patient, status=Status.SENT, sent_at=NOW)  # the email went; the text waits
    SmsOptOut.objects.create(practice=patient.practice, phone=MOBILE)
    assert _reason(invitation).startswith("The number is on the practice's text opt-out list")
    assert (invitation.text_status, invitation.status) == (TextStatus.FAILED, Status.SENT)  # the email's link still works
    assert delivery.deliver_text(invitation.pk, now=NOW) == "not-claimed"
    assert written_texts(text_files) == []


def test_withdrawn_text_consent_fails_a_waiting_text(patient, text_files):
    invitation = _both(patient)
    patient.sms_consent = False
    patient.save()
    assert _reason(invitation) == "The patient withdrew consent to texts; the text was not sent."
    assert invitation.status == Status.PENDING  # the email is still to go
    assert delivery.deliver_text(invitation.pk, now=NOW) == "not-claimed" and written_texts(text_files) == []


def test_texts_turned_off_fail_the_practices_waiting_texts(patient, text_files):
    invitation = _both(patient)
    patient.practice.text_invitations_enabled = False
    patient.practice.save()
    assert _reason(invitation).startswith("Invitation texts were turned off for the practice")


def test_the_send_itself_checks_again_before_claiming(patient, text_files):
    invitation = _both(patient)
    # Changed behind the signals' back (a bulk update): the send finds it before claiming.
    SmsOptOut.objects.bulk_create([SmsOptOut(practice=patient.practice, phone=MOBILE)])
    assert delivery.deliver_text(invitation.pk, now=NOW) == "blocked"
    assert written_texts(text_files) == []
    assert _reason(invitation).startswith("The number is on the practice's text opt-out list")


def test_a_text_a_worker_already_holds_is_left_to_finish(patient, frozen):
    invitation = _both(patient)
    assert Invitation.objects.claim_text(invitation.pk, NOW)
    SmsOptOut.objects.create(practice=patient.practice, phone=MOBILE)
    invitation.refresh_from_db()
    assert invitation.text_status == TextStatus.PENDING  # its claim came first; Twilio refuses a STOPped number itself


def test_a_late_mark_never_revives_a_failed_text(patient):
    invitation = _both(patient)
    Invitation.objects.fail_texts([(invitation.pk, "Gave up")], now=NOW)
    assert Invitation.objects.mark_texts_queued([(invitation.pk, "SM1")], now=NOW) == []
    invitation.refresh_from_db()
    assert (invitation.text_status, invitation.text_sid, invitation.text_sent_at) == (TextStatus.FAILED, "", None)


# -- the email and the text of one invitation -----------------------------------------------------


def test_an_emails_temporary_error_after_its_text_went_is_released_for_the_retry(patient):
    invitation = _both(patient, text_status=TextStatus.QUEUED, status=Status.SENT, text_sent_at=NOW)
    assert invitation.claim_for_sending(NOW)
    invitation.release_claim(NOW, detail="HTTP 503")
    invitation.refresh_from_db()
    assert invitation.sending_started_at is None
    assert invitation.events.filter(kind=EventKind.SEND_RETRY).count() == 1
    assert invitation.claim_for_sending(NOW + datetime.timedelta(seconds=30))  # the retry claims it again


def test_a_chunk_releases_an_email_whose_text_already_went(patient):
    invitation = _both(patient, text_status=TextStatus.QUEUED, status=Status.SENT, text_sent_at=NOW, sending_started_at=NOW)
    Invitation.objects.release_many([(invitation.pk, "HTTP 503")], now=NOW)
    invitation.refresh_from_db()
    assert invitation.sending_started_at is None


# -- the sweep ------------------------------------------------------------------------------------


def test_a_text_whose_worker_died_holding_it_is_enqueued_again(patient, django_capture_on_commit_callbacks, monkeypatch):
    invitation = _both(patient, text_attempts=1, text_claimed_at=NOW)
    enqueued = []
    monkeypatch.setattr(delivery, "enqueue_on_commit", lambda name, *args, **kw: enqueued.append((name, args)))
    assert delivery.requeue_unsent_texts(now=NOW + TEXT_CLAIM_LEASE - datetime.timedelta(seconds=1)) == 0  # still held
    assert delivery.requeue_unsent_texts(now=NOW + TEXT_CLAIM_LEASE) == 1
    assert enqueued == [("invitations.send_invitation_text", (invitation.pk,))]


def test_services_invite_refuses_a_text_to_a_number_that_replied_stop(patient):
    SmsOptOut.objects.create(practice=patient.practice, phone=MOBILE)
    outcome = services.invite(patient, now=NOW, send_by="text")
    assert [reason.code for reason in outcome.reasons] == ["sms_opted_out"]
