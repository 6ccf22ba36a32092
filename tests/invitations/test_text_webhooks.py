"""Twilio's status callbacks for invitation texts (/twilio/text-status/?invitation=<public id>),
posted with Django's test client and signed as Twilio signs them: each state moves the text only
forward with one timeline entry, a repeat or a late one changes nothing, an undelivered text fails
(and teaches the chart what the carrier said), a callback before our own mark still records the
SID and state; everything not signed by Twilio is refused and stores nothing. End to end, the
stand-in's own signed callbacks reach a live server."""

import time
import uuid

import pytest
from django.core import mail
from django.urls import reverse

from invitations.models import Invitation, Status, TextStatus
from invitations.models.events import EventKind, InvitationEvent
from invitations.vocabulary import SendBy
from tests.clock import NOW
from tests.invitations.text_fixtures import (  # noqa: F401  (fixtures)
    MOBILE,
    _twilio_server,
    events,
    fresh_sms_rate,
    invite_now,
    patient,
    post_as_twilio,
    texting,
    texting_practice,
    twilio,
)
from tests.twilio_standin import sign, status_params

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

SID = "SM" + "ab12" * 8


def status_path(invitation) -> str:
    return f"{reverse('invitations:twilio_text_status')}?invitation={invitation.public_id}"


def callback(client, invitation, status, *, sid=None, error_code=None, **options):
    params = status_params(sid or invitation.text_sid or SID, status, to=MOBILE, error_code=error_code)
    return post_as_twilio(client, status_path(invitation), params, **options)


@pytest.fixture
def texted_invitation(texting, patient, invite_now):
    """An invitation whose text Twilio took (queued), by text only."""
    invitation = invite_now(patient, SendBy.TEXT).invitation
    assert invitation.text_status == TextStatus.QUEUED
    return invitation


def snapshot(invitation):
    """Everything a webhook could change."""
    return (
        Invitation.objects.filter(pk=invitation.pk).values().get(),
        list(InvitationEvent.objects.filter(invitation=invitation).values_list("pk", flat=True)),
        list(invitation.patient.__class__.objects.filter(pk=invitation.patient_id).values().get().items()),
    )


# -- states ----------------------------------------------------------------------------------------


def test_queued_sent_delivered_move_the_text_forward_with_one_entry_each(client, texted_invitation):
    for status in ("queued", "sent", "delivered"):
        assert callback(client, texted_invitation, status).status_code == 204
    texted_invitation.refresh_from_db()
    assert (texted_invitation.status, texted_invitation.text_status) == (Status.SENT, TextStatus.DELIVERED)
    assert [kind for kind, _ in events(texted_invitation)] == [
        EventKind.CREATED, EventKind.TEXT_QUEUED, EventKind.TEXT_SENT, EventKind.TEXT_DELIVERED,
    ]


def test_a_repeated_or_late_callback_changes_nothing_and_adds_no_entry(client, texted_invitation):
    callback(client, texted_invitation, "delivered")
    before = snapshot(texted_invitation)
    for status in ("delivered", "sent", "queued", "sending", "undelivered"):  # Twilio retries, out of order
        assert callback(client, texted_invitation, status, error_code=30003 if status == "undelivered" else None).status_code == 204
    assert snapshot(texted_invitation) == before
    texted_invitation.refresh_from_db()
    assert texted_invitation.text_status == TextStatus.DELIVERED


def test_undelivered_to_a_landline_fails_the_text_and_marks_the_charts_mobile(client, texted_invitation):
    assert callback(client, texted_invitation, "sent").status_code == 204
    assert callback(client, texted_invitation, "undelivered", error_code=30006).status_code == 204
    texted_invitation.refresh_from_db()
    assert (texted_invitation.status, texted_invitation.text_status) == (Status.FAILED, TextStatus.UNDELIVERED)
    assert texted_invitation.text_error == "The number is a landline or its carrier cannot take texts (Twilio error 30006)."
    assert texted_invitation.failure_reason == texted_invitation.text_error
    assert events(texted_invitation)[-1] == (EventKind.TEXT_UNDELIVERED, texted_invitation.text_error)
    texted_invitation.patient.refresh_from_db()
    assert (texted_invitation.patient.undeliverable_mobile, texted_invitation.patient.undeliverable_mobile_reason) == (MOBILE, texted_invitation.text_error)


def test_undelivered_because_the_phone_was_off_records_the_reason_and_marks_nothing(client, texted_invitation):
    assert callback(client, texted_invitation, "undelivered", error_code=30003).status_code == 204
    texted_invitation.refresh_from_db()
    assert (texted_invitation.status, texted_invitation.text_status) == (Status.FAILED, TextStatus.UNDELIVERED)
    assert "switched off or out of coverage" in texted_invitation.text_error and "30003" in texted_invitation.text_error
    texted_invitation.patient.refresh_from_db()
    assert texted_invitation.patient.undeliverable_mobile == ""  # another day it may arrive: a resend is allowed


def test_undelivered_text_of_an_invitation_also_sent_by_email_leaves_it_open(client, texting, patient, invite_now):
    invitation = invite_now(patient, SendBy.BOTH).invitation
    assert callback(client, invitation, "undelivered", error_code=30006).status_code == 204
    invitation.refresh_from_db()
    assert (invitation.status, invitation.text_status) == (Status.SENT, TextStatus.UNDELIVERED)  # the email may reach them
    assert invitation.failure_reason == invitation.text_error  # what staff read about the channel that failed


def test_a_text_undelivered_after_the_patient_registered_by_email_gives_no_failure_reason(
    client, texting, patient, invite_now
):
    invitation = invite_now(patient, SendBy.BOTH).invitation
    email_link = "/invite/" + mail.outbox[0].body.split("/invite/")[1].split("/")[0] + "/"
    answers = {"last_name": "Quintanilla", "date_of_birth": "11/03/1984", "username": "zoe.q",
               "password1": "correct horse battery 42", "password2": "correct horse battery 42"}
    assert client.post(email_link, answers).status_code == 302
    assert callback(client, invitation, "undelivered", error_code=30006).status_code == 204
    invitation.refresh_from_db()
    assert (invitation.status, invitation.text_status, invitation.failure_reason) == (Status.ACCEPTED, TextStatus.UNDELIVERED, "")
    assert events(invitation)[-1][0] == EventKind.TEXT_UNDELIVERED  # the timeline still says what happened


def test_a_callback_before_our_own_mark_records_the_sid_and_state(client, texting, patient):
    invitation = Invitation.objects.create_latest(
        practice=patient.practice, patient=patient, email="", by_email=False, by_text=True, text_to=MOBILE,
        text_status=TextStatus.PENDING, created_at=NOW, expires_at=patient.practice.link_expires_at(NOW),
    )
    assert Invitation.objects.claim_text(invitation.pk, NOW)  # the worker is in its call to Twilio
    assert callback(client, invitation, "queued", sid=SID).status_code == 204
    invitation.refresh_from_db()
    assert (invitation.status, invitation.text_status, invitation.text_sid) == (Status.SENT, TextStatus.QUEUED, SID)

    assert Invitation.objects.mark_texts_queued([(invitation.pk, SID)], now=NOW) == [invitation.pk]  # our own mark
    invitation.refresh_from_db()
    assert (invitation.text_status, invitation.text_sid, invitation.text_sent_at) == (TextStatus.QUEUED, SID, NOW)
    assert invitation.text_claimed_at is None
    assert events(invitation) == [(EventKind.TEXT_QUEUED, "To …0123")]  # one entry, not one each


def test_a_later_state_before_our_own_mark_is_kept_by_the_mark(client, texting, patient):
    invitation = Invitation.objects.create_latest(
        practice=patient.practice, patient=patient, email="", by_email=False, by_text=True, text_to=MOBILE,
        text_status=TextStatus.PENDING, created_at=NOW, expires_at=patient.practice.link_expires_at(NOW),
    )
    Invitation.objects.claim_text(invitation.pk, NOW)
    assert callback(client, invitation, "delivered", sid=SID).status_code == 204
    Invitation.objects.mark_texts_queued([(invitation.pk, SID)], now=NOW)
    invitation.refresh_from_db()
    assert (invitation.status, invitation.text_status, invitation.text_sid) == (Status.SENT, TextStatus.DELIVERED, SID)


# -- what does not come from Twilio ---------------------------------------------------------------


def test_unsigned_forged_get_and_incomplete_requests_are_refused_and_store_nothing(client, texted_invitation, settings):
    before = snapshot(texted_invitation)
    params = status_params(texted_invitation.text_sid, "undelivered", to=MOBILE, error_code=30006)
    path = status_path(texted_invitation)
    unsigned = post_as_twilio(client, path, params, signature="")
    assert (unsigned.status_code, unsigned.json()["error"]) == (403, "unsigned")
    forged = post_as_twilio(client, path, params, signature=sign("https://portal.example.test" + path, params, "not-our-token"))
    assert (forged.status_code, forged.json()["error"]) == (403, "bad_signature")
    other_invitation = post_as_twilio(
        client, path, params, signature=sign(f"https://portal.example.test{path[:-4]}{uuid.uuid4().hex[:4]}", params),
    )
    assert other_invitation.status_code == 403  # the query string is signed too
    assert client.get(path).status_code == 405
    for missing in ("MessageSid", "MessageStatus"):
        incomplete = {k: v for k, v in params.items() if k != missing}
        response = post_as_twilio(client, path, incomplete)
        assert response.status_code == 400 and missing in response.json()["detail"]
    settings.SMS_PROVIDER = ""
    assert post_as_twilio(client, path, params).status_code == 404
    assert snapshot(texted_invitation) == before


def test_a_callback_for_an_unknown_invitation_is_accepted_and_does_nothing(client, texted_invitation):
    before = snapshot(texted_invitation)
    path = reverse("invitations:twilio_text_status")
    for query in (f"?invitation={uuid.uuid4()}", "?invitation=not-a-uuid", ""):
        params = status_params("SM" + "f" * 32, "undelivered", to=MOBILE, error_code=30006)
        assert post_as_twilio(client, path + query, params).status_code == 204
    assert snapshot(texted_invitation) == before


def test_callbacks_take_a_bounded_number_of_queries(client, texted_invitation, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        assert callback(client, texted_invitation, "sent").status_code == 204
    with django_assert_max_num_queries(4):
        assert callback(client, texted_invitation, "sent").status_code == 204  # a repeat
    with django_assert_max_num_queries(14):
        assert callback(client, texted_invitation, "undelivered", error_code=30006).status_code == 204


# -- end to end: the stand-in's own callbacks reach a live server ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_standins_signed_callbacks_reach_a_live_server(twilio, fresh_sms_rate, live_server, settings, patient, invite_now):
    settings.PORTAL_BASE_URL = live_server.url  # where Twilio posts, and what it signs
    twilio.configure(callbacks=True, callback_delay=0.01, landlines=["+16175550188"])
    landline = patient.__class__.objects.create(
        practice=patient.practice, chart_number="L-1", first_name="Lee", last_name="Landline", date_of_birth=patient.date_of_birth,
        zip_code="02139", birth_sex=patient.birth_sex, mobile_phone="+16175550188", sms_consent=True,
    )
    delivered = invite_now(patient, SendBy.TEXT).invitation
    undelivered = invite_now(landline, SendBy.TEXT).invitation

    deadline = time.monotonic() + 20
    while len(twilio.callbacks()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(c["answer"] for c in twilio.callbacks()) == [204] * 6
    delivered.refresh_from_db()
    undelivered.refresh_from_db()
    assert (delivered.status, delivered.text_status) == (Status.SENT, TextStatus.DELIVERED)
    assert (undelivered.status, undelivered.text_status) == (Status.FAILED, TextStatus.UNDELIVERED)
    assert [kind for kind, _ in events(delivered)] == [
        EventKind.CREATED, EventKind.TEXT_QUEUED, EventKind.TEXT_SENT, EventKind.TEXT_DELIVERED,
    ]
    landline.refresh_from_db()
    assert landline.undeliverable_mobile == "+16175550188"
