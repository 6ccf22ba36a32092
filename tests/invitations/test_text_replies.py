"""Patients' replies to invitation texts (/twilio/replies/, signed as Twilio signs them): STOP and
the carriers' other opt-out words put the number on the opt-out list of every practice that texted
it, at once (not of a practice that only has it on a chart), and the next invitation by text is
refused with the reason; START takes it off where a STOP put it, never where staff did; HELP answers
with the practice's name and phone, and names no practice to a number none texted; every change is
audited; a reply whose handling failed is handled when Twilio posts it again; any other reply does
nothing; nothing of a reply's wording (or the whole number) is logged. End to end, a STOP and a
START through the stand-in."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse

from invitations import services
from invitations.models import Invitation, RevokeReason, Status
from invitations.vocabulary import SendBy
from patients.models import Patient, SmsOptOut, SmsOptOutReason
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import InvitationFactory
from tests.invitations.text_fixtures import (  # noqa: F401  (fixtures)
    MOBILE,
    _twilio_server,
    fresh_sms_rate,
    invite_now,
    patient,
    post_as_twilio,
    texted,
    texting,
    texting_practice,
    twilio,
)
from tests.twilio_standin import inbound_params

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
PATH = reverse("invitations:twilio_replies")


def reply(client, body, *, from_=MOBILE, **fields):
    return post_as_twilio(client, PATH, inbound_params(from_=from_, body=body, **fields))


def opted_out_at(phone=MOBILE) -> dict[str, str]:
    return dict(SmsOptOut.objects.filter(phone=phone).values_list("practice__name", "reason"))


@pytest.fixture
def two_practices(texting, patient):
    """The patient's practice has the number on a chart; another practice texted it an invitation
    (a family member); a third has nothing to do with it."""
    other = PracticeFactory(name="Harbour Pediatrics", contact_phone="(617) 555-0199", text_invitations_enabled=True)
    child = PatientFactory(practice=other, email="", mobile_phone=MOBILE, texting=True)
    link = services.invite(child, now=NOW, send_by=SendBy.TEXT).invitation
    Invitation.objects.filter(pk=link.pk).update(status=Status.SENT)
    # The chart has another number since (an update, as an import would); the text went to MOBILE.
    Patient.objects.filter(pk=child.pk).update(mobile_phone="+16175550111")
    PracticeFactory(name="Unrelated Clinic", text_invitations_enabled=True)
    return patient.practice, other, link


# -- STOP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("body, opt_out_type", [
    ("STOP", ""), ("stop", ""), (" Stop. ", ""), ("STOPALL", ""), ("unsubscribe!", ""), ("Cancel", ""), ("END", ""),
    ("quit", ""), ("Please stop texting me", "STOP"),  # a messaging service's Advanced Opt-Out decides
])
def test_stop_puts_the_number_on_the_opt_out_list_of_every_practice_that_texted_it(client, two_practices, body, opt_out_type):
    mine, other, link = two_practices
    response = reply(client, body, opt_out_type=opt_out_type)
    assert response.status_code == 200 and response["Content-Type"] == "application/xml"
    assert "<Message>" not in response.content.decode()  # Twilio confirms the opt-out itself
    # Only the practice that texted it: the patient's own practice has the number on a chart but
    # never texted it, so the STOP did not answer it.
    assert opted_out_at() == {other.name: SmsOptOutReason.STOP_REPLY}
    link.refresh_from_db()
    assert (link.status, link.revoke_reason) == (Status.REVOKED, RevokeReason.TEXT_OPTED_OUT)


def test_after_stop_the_next_invitation_by_text_is_refused_with_the_reason(client, texting, patient, invite_now, frozen):
    invite_now(patient, SendBy.TEXT)
    assert reply(client, "STOP").status_code == 200
    frozen.shift(timedelta(hours=2))  # past the one-hour rule
    refused = invite_now(patient, SendBy.TEXT)
    assert not refused.created
    assert [r.code for r in refused.reasons] == ["sms_opted_out"]
    assert "replied STOP" in refused.reasons[0].message
    assert invite_now(patient, SendBy.AUTO).invitation.by_text is False  # email still works
    assert texting.stats()["requests"] == 1  # the first invitation's text only


def test_stop_reaches_a_practice_that_texted_the_number_long_before_many_others_did(client, texting):
    long_ago = PracticeFactory(name="Old Town Dental")
    InvitationFactory(patient=PatientFactory(practice=long_ago), by_text=True, text_to=MOBILE, created_at=NOW - timedelta(days=400))
    busy = PracticeFactory(name="Busy Clinic")
    for days in range(60):  # a shared family phone, re-invited month after month
        InvitationFactory(patient=PatientFactory(practice=busy), by_text=True, text_to=MOBILE, created_at=NOW - timedelta(days=days))
    reply(client, "STOP")
    assert set(opted_out_at()) == {"Old Town Dental", "Busy Clinic"}


def test_a_second_stop_changes_nothing(client, two_practices):
    reply(client, "STOP")
    entries = list(SmsOptOut.objects.values_list("pk", "created_at"))
    reply(client, "stop")
    assert list(SmsOptOut.objects.values_list("pk", "created_at")) == entries


# -- START, HELP, anything else ---------------------------------------------------------------------


@pytest.mark.parametrize("body, opt_out_type", [("START", ""), ("unstop", ""), ("yes", ""), ("Start texting me again", "START")])
def test_start_takes_the_number_off_the_lists(client, texting, two_practices, invite_now, body, opt_out_type):
    reply(client, "STOP")
    response = reply(client, body, opt_out_type=opt_out_type)
    assert response.status_code == 200 and "<Message>" not in response.content.decode()
    assert opted_out_at() == {}
    mine = two_practices[0]
    patient = mine.patients.get(mobile_phone=MOBILE)
    assert invite_now(patient, SendBy.TEXT).created


@pytest.mark.parametrize("body, opt_out_type", [("HELP", ""), ("info", ""), ("Help!", ""), ("what is this?", "HELP")])
def test_help_answers_with_the_practices_name_and_phone(client, texting, patient, invite_now, body, opt_out_type):
    invite_now(patient, SendBy.TEXT)
    response = reply(client, body, opt_out_type=opt_out_type)
    assert response.status_code == 200
    assert response.content.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>Maple Street Dental: patient portal invitations. '
        "Questions? Call (617) 555-0142. Reply STOP to opt out.</Message></Response>"
    )
    assert opted_out_at() == {}


def test_help_names_the_practice_that_texted_the_number_last(client, two_practices):
    response = reply(client, "HELP")
    assert "Harbour Pediatrics: patient portal invitations. Questions? Call (617) 555-0199." in response.content.decode()


def test_help_from_a_number_no_practice_texts_says_what_the_number_is(client, texting):
    response = reply(client, "HELP", from_="+16175550999")
    assert "<Message>Patient portal invitations. Reply STOP to opt out.</Message>" in response.content.decode()


def test_any_other_reply_does_nothing_and_nothing_of_it_is_logged(client, two_practices, caplog):
    caplog.set_level(logging.DEBUG)
    before = list(Invitation.objects.values())
    for body in ("Hello, is this Dr. Patel? My tooth hurts", "stop it", "STOP?", ""):
        response = reply(client, body)
        assert response.status_code == 200
        assert response.content.decode() == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert opted_out_at() == {} and list(Invitation.objects.values()) == before
    reply(client, "STOP")
    assert "tooth" not in caplog.text and "Patel" not in caplog.text
    assert MOBILE not in caplog.text and MOBILE[1:] not in caplog.text
    assert "…0123" in caplog.text  # the number's last digits only


def test_replies_that_twilio_did_not_sign_are_refused_and_store_nothing(client, two_practices, settings):
    params = inbound_params(from_=MOBILE, body="STOP")
    assert post_as_twilio(client, PATH, params, signature="").status_code == 403
    assert post_as_twilio(client, PATH, params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert client.get(PATH).status_code == 405
    no_sender = {k: v for k, v in params.items() if k != "From"}
    response = post_as_twilio(client, PATH, no_sender)
    assert response.status_code == 400 and "From" in response.json()["detail"]
    settings.SMS_PROVIDER = ""
    assert post_as_twilio(client, PATH, params).status_code == 404
    assert opted_out_at() == {}


def test_a_reply_takes_a_bounded_number_of_queries(client, two_practices, django_assert_max_num_queries):
    # Marking it handled (a savepoint each for the transaction and the insert: 5), finding the
    # practices (2), the language (1).
    with django_assert_max_num_queries(5 + 3):
        reply(client, "HELP")
    with django_assert_max_num_queries(5):
        reply(client, "Thanks")
    # Marked handled (5); finding the practices (2); per practice its entry (4), its audit entry, its
    # open text links and whether a text to the number still waits (7); per link revoked its change
    # and timeline entry (4).
    with django_assert_max_num_queries(5 + 2 + 7 + 4):
        reply(client, "STOP")


# -- end to end: the stand-in's STOP and START reach a live server ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_stop_and_start_through_the_standin_reach_a_live_server(twilio, fresh_sms_rate, live_server, settings, patient, invite_now, frozen):
    settings.PORTAL_BASE_URL = live_server.url  # what Twilio calls and signs
    twilio.configure(callbacks=False)
    url = live_server.url + PATH
    invite_now(patient, SendBy.TEXT)
    frozen.shift(timedelta(hours=2))
    answer = twilio.reply(url, from_=MOBILE, body="Stop")
    assert answer["answer"] == 200
    assert opted_out_at() == {"Maple Street Dental": SmsOptOutReason.STOP_REPLY}
    assert [r.code for r in invite_now(patient, SendBy.TEXT).reasons] == ["sms_opted_out"]

    answer = twilio.reply(url, from_=MOBILE, body="START")
    assert answer["answer"] == 200 and opted_out_at() == {}
    frozen.shift(timedelta(hours=2))
    assert invite_now(patient, SendBy.TEXT).invitation.status == Status.SENT  # Twilio texts the number again too
    assert len(texted(twilio)) == 2


def test_a_reply_twilio_posts_again_is_answered_once(client, two_practices):
    first = reply(client, "HELP", message_sid="SM" + "7" * 32)
    again = reply(client, "HELP", message_sid="SM" + "7" * 32)
    assert b"<Message>" in first.content
    assert again.status_code == 200 and b"<Message>" not in again.content
    assert b"<Message>" in reply(client, "HELP").content  # another reply is answered


# -- what a reply may touch, and that it is never lost -----------------------------------------------


def test_start_never_lifts_an_entry_staff_added(client, two_practices):
    mine, other, _link = two_practices
    SmsOptOut.objects.create(practice=other, phone=MOBILE, reason=SmsOptOutReason.STAFF)
    reply(client, "STOP")
    reply(client, "START")
    assert opted_out_at() == {other.name: SmsOptOutReason.STAFF}


def test_stop_and_start_are_in_the_audit_trail_of_the_practice_that_texted(client, two_practices):
    from patients.audit import AuditAction, AuditEntry

    mine, other, _link = two_practices
    reply(client, "STOP")
    reply(client, "START")
    entries = list(AuditEntry.objects.order_by("id").values_list("practice__name", "action", "actor", "summary"))
    assert entries == [
        (other.name, AuditAction.OPT_OUT_ADDED, None, "…0123 replied STOP: added to the text opt-out list"),
        (other.name, AuditAction.OPT_OUT_REMOVED, None, "…0123 replied START: removed from the text opt-out list"),
    ]


def test_help_from_a_number_a_practice_only_holds_on_a_chart_names_no_practice(client, texting, patient):
    """Whoever holds the phone learns nothing of which practice has the number on a chart."""
    response = reply(client, "HELP")
    assert "<Message>Patient portal invitations. Reply STOP to opt out.</Message>" in response.content.decode()
    assert patient.practice.name not in response.content.decode()


def test_a_reply_whose_handling_failed_is_handled_when_twilio_posts_it_again(client, two_practices, monkeypatch):
    from django.db import OperationalError

    from invitations.texts import replies

    handle = replies.handle_reply
    calls = []

    def failing_once(fields, *, now):
        calls.append(1)
        if len(calls) == 1:
            handle(fields, now=now)  # its effect is rolled back with the failure
            raise OperationalError("the database went away for a moment")
        return handle(fields, now=now)

    monkeypatch.setattr(replies, "handle_reply", failing_once)
    client.raise_request_exception = False
    sid = "SM" + "5" * 32
    assert reply(client, "STOP", message_sid=sid).status_code == 500
    assert opted_out_at() == {}
    assert reply(client, "STOP", message_sid=sid).status_code == 200  # Twilio's retry
    assert opted_out_at() == {two_practices[1].name: SmsOptOutReason.STOP_REPLY}
    assert reply(client, "STOP", message_sid=sid).status_code == 200 and len(calls) == 2  # then once is enough
