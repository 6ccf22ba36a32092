"""One invitation by text, through the real twilio client to the local stand-in: services.invite
with send_by text / both / auto, the task's one text (the practice's wording, the short /t/ link,
one GSM-7 segment, nothing about health), the text's link opening the registration page and
registering the patient; which channel each choice picks; what Twilio's refusals teach the chart
and the opt-out list. The same text written as a file when no provider is configured."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from core.sending.text_segments import measure
from invitations import eligibility, services
from invitations.models import (
    Channel,
    Invitation,
    InvitationTemplate,
    RevokeReason,
    Status,
    TextStatus,
)
from invitations.models.events import EventKind
from invitations.vocabulary import SendBy
from patients.models import SmsOptOut, SmsOptOutReason
from tests.clock import NOW
from tests.factories import PatientFactory
from tests.invitations.text_fixtures import (  # noqa: F401  (fixtures)
    DATE_OF_BIRTH,
    MOBILE,
    _twilio_server,
    events,
    fresh_sms_rate,
    invite_now,
    patient,
    text_files,
    text_path,
    texted,
    texting,
    texting_practice,
    token_in,
    twilio,
    written_texts,
)
from tests.twilio_standin import INVALID_NUMBER, NOT_MOBILE, UNSUBSCRIBED

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
User = get_user_model()


def zoe_answers(**overrides):
    data = {
        "last_name": "quintanilla", "date_of_birth": DATE_OF_BIRTH.strftime("%m/%d/%Y"), "username": "zoe.q",
        "password1": "correct horse battery 42", "password2": "correct horse battery 42",
    }
    return {**data, **overrides}


def reason_codes(outcome) -> list[str]:
    return [reason.code for reason in outcome.reasons]


# -- the text and its link ------------------------------------------------------------------------


def test_an_invitation_by_text_sends_one_text_with_the_practices_wording_and_a_short_link(texting, patient, invite_now):
    InvitationTemplate.objects.create(
        practice=patient.practice, subject="Your portal", html_body="<p>[Registration Link]</p>",
        text_body="[Practice Name] invites you to its patient portal: [Registration Link] Questions? [Practice Phone]",
    )
    outcome = invite_now(patient, SendBy.TEXT)
    invitation = outcome.invitation
    [message] = texting.accepted()
    body = message["body"]
    assert message["to"] == MOBILE
    assert body.startswith("Maple Street Dental invites you to its patient portal: https://portal.example.test/t/")
    assert body.endswith("Questions? (617) 555-0142")
    assert message["num_segments"] == "1" and measure(body).encoding == "GSM-7"
    # Nothing about the patient: not their name, birth date, or anything from the chart.
    for private in ("Zoë", "Zoe", "Quintanilla", "1984", "11/03"):
        assert private not in body
    assert message["status_callback"] == (
        f"https://portal.example.test/twilio/text-status/?invitation={invitation.public_id}"
    )
    assert (invitation.status, invitation.text_status, invitation.text_sid) == (Status.SENT, TextStatus.QUEUED, message["sid"])
    assert (invitation.by_email, invitation.by_text, invitation.email, invitation.text_to) == (False, True, "", MOBILE)
    assert invitation.text_sent_at == NOW and invitation.text_claimed_at is None and invitation.text_attempts == 1
    assert events(invitation) == [(EventKind.CREATED, "Manual (by text message)"), (EventKind.TEXT_QUEUED, "To …0123")]
    assert Invitation.find_by_token(token_in(body)) == invitation


def test_the_texts_link_opens_the_registration_page_and_consumes_nothing(texting, patient, invite_now, client):
    invitation = invite_now(patient, SendBy.TEXT).invitation
    path = text_path(token_in(texting.accepted()[0]["body"]))
    assert len(path) == len("/t//") + 32  # 24 random bytes: the text stays one message
    before = Invitation.objects.filter(pk=invitation.pk).values().get()
    for _ in range(2):  # a link preview, then the patient
        response = client.get(path)
        assert response.status_code == 200
        assert "Maple Street Dental invited you to its patient portal" in response.content.decode()
        assert response["Referrer-Policy"] == "no-referrer"
    assert Invitation.objects.filter(pk=invitation.pk).values().get() == before
    assert events(invitation)[-2:] == [(EventKind.LINK_OPENED, "From the text")] * 2
    assert not User.objects.exists()


def test_the_texts_link_registers_the_patient(texting, patient, invite_now, client):
    invitation = invite_now(patient, SendBy.TEXT).invitation
    path = text_path(token_in(texting.accepted()[0]["body"]))
    response = client.post(path, zoe_answers())
    assert response.status_code == 302 and response["Location"] == "/portal/"
    invitation.refresh_from_db()
    assert (invitation.status, invitation.accepted_via, invitation.accepted_at) == (Status.ACCEPTED, Channel.TEXT, NOW)
    assert events(invitation)[-1] == (EventKind.ACCEPTED, "With the link in the text")
    patient.refresh_from_db()
    assert patient.portal_user.username == "zoe.q"
    assert client.get("/portal/").status_code == 200
    assert client.get(path).status_code == 410  # used


def test_a_wrong_answer_on_the_texts_link_is_counted_like_the_emails(texting, patient, invite_now, client):
    invitation = invite_now(patient, SendBy.TEXT).invitation
    path = text_path(token_in(texting.accepted()[0]["body"]))
    response = client.post(path, zoe_answers(date_of_birth="01/01/1990"))
    assert response.status_code == 400
    invitation.refresh_from_db()
    assert (invitation.status, invitation.failed_attempts) == (Status.SENT, 1)


@pytest.mark.parametrize("register_with", [Channel.EMAIL, Channel.TEXT])
def test_an_invitation_by_both_carries_two_links_either_registers_and_then_the_other_is_used(
    texting, patient, invite_now, client, register_with
):
    invitation = invite_now(patient, SendBy.BOTH).invitation
    assert (invitation.by_email, invitation.by_text, invitation.status, invitation.text_status) == (
        True, True, Status.SENT, TextStatus.QUEUED,
    )
    [email] = mail.outbox
    email_path = "/invite/" + email.body.split("/invite/")[1].split("/")[0] + "/"
    text_link = text_path(token_in(texted(texting)[0]["body"]))
    assert events(invitation)[0] == (EventKind.CREATED, "Manual (by email and text message)")
    assert {EventKind.SENT, EventKind.TEXT_QUEUED} <= {kind for kind, _ in events(invitation)}

    used, other = (email_path, text_link) if register_with == Channel.EMAIL else (text_link, email_path)
    assert client.get(other).status_code == 200  # both work until one is used
    assert client.post(used, zoe_answers()).status_code == 302
    invitation.refresh_from_db()
    assert (invitation.status, invitation.accepted_via) == (Status.ACCEPTED, register_with)
    client.logout()
    assert client.get(other).status_code == 410
    assert client.post(other, zoe_answers(username="someone.else")).status_code == 410
    assert User.objects.count() == 1


def test_with_no_provider_the_text_is_written_as_a_file(text_files, patient, invite_now, client):
    invitation = invite_now(patient, SendBy.TEXT).invitation
    [(headers, body)] = written_texts(text_files)
    assert headers["To"] == MOBILE and headers["Segments"].startswith("1 (GSM-7")
    assert "Status-Callback" not in headers  # nobody would call it back
    assert invitation.text_sid == headers["Id"] and invitation.text_status == TextStatus.QUEUED
    assert body.startswith("Maple Street Dental: set up your patient portal account: https://portal.example.test/t/")
    assert client.get(text_path(token_in(body))).status_code == 200


# -- which channel ---------------------------------------------------------------------------------


def test_auto_sends_an_email_when_email_can_be_used_else_a_text(texting, patient, invite_now):
    by_email = invite_now(patient, SendBy.AUTO).invitation
    assert (by_email.by_email, by_email.by_text, by_email.text_status) == (True, False, TextStatus.NONE)
    assert len(mail.outbox) == 1 and texting.accepted() == []

    no_email = PatientFactory(practice=patient.practice, email="", mobile_phone="+16175550199", texting=True)
    by_text = invite_now(no_email, SendBy.AUTO).invitation
    assert (by_text.by_email, by_text.by_text, by_text.status) == (False, True, Status.SENT)
    assert len(mail.outbox) == 1 and [m["to"] for m in texting.accepted()] == ["+16175550199"]


def test_a_practice_with_texts_off_never_texts(texting, patient, invite_now):
    practice = patient.practice
    practice.text_invitations_enabled = False
    practice.save()
    refused = invite_now(patient, SendBy.TEXT)
    assert not refused.created and reason_codes(refused) == ["texts_disabled"]
    both = invite_now(patient, SendBy.BOTH)
    assert not both.created and reason_codes(both) == ["texts_disabled"]
    no_email = PatientFactory(practice=practice, email="", mobile_phone="+16175550199", texting=True)
    auto = invite_now(no_email, SendBy.AUTO)
    assert not auto.created and reason_codes(auto) == ["missing_email"]  # a text is no option here
    assert invite_now(patient, SendBy.AUTO).invitation.by_text is False
    assert texting.stats()["requests"] == 0


def test_both_with_one_channel_blocked_is_refused_with_that_channels_reasons(texting, patient, invite_now):
    patient.sms_consent = False
    patient.save()
    no_text = invite_now(patient, SendBy.BOTH)
    assert not no_text.created and reason_codes(no_text) == ["no_sms_consent"]
    patient.sms_consent, patient.email_consent = True, False
    patient.save()
    no_email = invite_now(patient, SendBy.BOTH)
    assert not no_email.created and reason_codes(no_email) == ["no_consent"]
    assert not Invitation.objects.exists() and texting.stats()["requests"] == 0


# -- what Twilio's refusals teach ------------------------------------------------------------------


@pytest.mark.parametrize("number, code", [(INVALID_NUMBER, 21211), (NOT_MOBILE, 21614)])
def test_an_invalid_number_or_a_landline_marks_the_charts_mobile_undeliverable(texting, patient, invite_now, number, code):
    patient.mobile_phone = number
    patient.save()
    invitation = invite_now(patient, SendBy.TEXT).invitation
    assert (invitation.status, invitation.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert f"Twilio error {code}" in invitation.text_error and number not in invitation.text_error
    assert invitation.failure_reason == invitation.text_error
    assert events(invitation)[-1] == (EventKind.TEXT_FAILED, invitation.text_error)
    patient.refresh_from_db()
    assert (patient.undeliverable_mobile, patient.undeliverable_mobile_reason) == (number, invitation.text_error[:200])

    again = invite_now(patient, SendBy.TEXT)
    assert reason_codes(again) == ["undeliverable_mobile"]
    assert texting.stats()["requests"] == 1  # the number is not tried again

    patient.mobile_phone = "+16175550177"  # staff correct the number
    patient.save()
    assert eligibility.channels_for(patient, now=NOW, plan=eligibility.Plan.TEXT).channels == (Channel.TEXT,)


def test_an_unsubscribed_number_goes_on_the_opt_out_list_and_its_text_only_links_stop(texting, patient, invite_now):
    practice = patient.practice
    patient.mobile_phone = UNSUBSCRIBED
    patient.save()
    # A child on the parent's number, invited by text only yesterday; a sibling by email and text.
    yesterday = NOW - datetime.timedelta(days=1)
    child = PatientFactory(practice=practice, email="", mobile_phone=UNSUBSCRIBED, texting=True)
    child_link = services.invite(child, now=yesterday, send_by=SendBy.TEXT).invitation
    sibling = PatientFactory(practice=practice, mobile_phone=UNSUBSCRIBED, texting=True)
    sibling_link = services.invite(sibling, now=yesterday, send_by=SendBy.BOTH).invitation

    invitation = invite_now(patient, SendBy.TEXT).invitation
    assert (invitation.status, invitation.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert "Twilio error 21610" in invitation.text_error
    entry = SmsOptOut.objects.get(practice=practice, phone=UNSUBSCRIBED)
    assert entry.reason == SmsOptOutReason.PROVIDER
    child_link.refresh_from_db()
    sibling_link.refresh_from_db()
    assert (child_link.status, child_link.revoke_reason) == (Status.REVOKED, RevokeReason.TEXT_OPTED_OUT)
    assert sibling_link.status == Status.PENDING  # the email may still reach that patient
    patient.refresh_from_db()
    assert patient.undeliverable_mobile == ""  # opted out, not undeliverable
    assert reason_codes(invite_now(patient, SendBy.TEXT)) == ["sms_opted_out"]


def test_a_last_name_typed_with_a_phones_curly_apostrophe_registers(texting, patient, invite_now, client):
    patient.last_name = "O'Brien"
    patient.save()
    invitation = invite_now(patient, SendBy.TEXT).invitation
    path = text_path(token_in(texting.accepted()[0]["body"]))
    assert client.post(path, zoe_answers(last_name="O’Brien")).status_code == 302  # iOS types ’ for '
    invitation.refresh_from_db()
    assert invitation.status == Status.ACCEPTED
