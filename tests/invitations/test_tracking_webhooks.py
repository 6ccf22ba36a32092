"""Real-shaped delivery reports from two providers through anymail's tracking webhook views."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.test import override_settings

from invitations.models import EventKind, Status
from invitations.models.delivery_reports import DeliveryReport
from patients.models import EmailOptOut, OptOutReason
from tests.factories import PatientFactory
from tests.invitations.factories import InvitationFactory

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "hook-user:hook-password-123"
MAILGUN_KEY = "mailgun-signing-key-for-tests"


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY}


def basic_auth(secret: str = WEBHOOK_SECRET) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def postmark(client, payload: dict, **headers):
    with override_settings(EMAIL_PROVIDER="postmark"):
        return client.post("/anymail/postmark/tracking/", json.dumps(payload), content_type="application/json", **headers)


def postmark_delivery(invitation) -> dict:
    return {
        "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Recipient": invitation.email, "Tag": "",
        "DeliveredAt": "2026-03-02T16:34:52Z", "Details": "Test delivery webhook details",
        "Metadata": {"invitation": str(invitation.public_id)},
    }


def postmark_bounce(invitation) -> dict:
    return {
        "RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce",
        "Tag": "", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483", "Metadata": {"invitation": str(invitation.public_id)},
        "ServerID": 23, "MessageStream": "outbound", "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.", "Email": invitation.email,
        "From": "portal@practice.example", "BouncedAt": "2026-03-02T16:33:54.9070259Z", "DumpAvailable": True,
        "Inactive": True, "CanActivate": True, "Subject": "Your patient portal invitation",
    }


def postmark_complaint(invitation) -> dict:
    payload = postmark_bounce(invitation)
    payload.update({"RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint", "TypeCode": 512, "Name": "Spam complaint"})
    return payload


def mailgun(client, event_data: dict, *, key: str = MAILGUN_KEY, **headers):
    # Mailgun signs each webhook call with a fresh token and repeats it when it retries the call;
    # anymail uses the token as the event id.
    timestamp, token = str(int(time.time())), hashlib.sha256(event_data["id"].encode()).hexdigest()[:50]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    body = {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event_data}
    with override_settings(EMAIL_PROVIDER="mailgun"):
        return client.post("/anymail/mailgun/tracking/", json.dumps(body), content_type="application/json", **headers)


def mailgun_event(invitation, event: str, **extra) -> dict:
    return {
        "event": event, "timestamp": 1772468092.329574, "id": f"CPgfbmQMTCKtHW6uIWtuVe-{event}",
        "recipient": invitation.email, "tags": [], "user-variables": {"invitation": str(invitation.public_id)},
        "message": {"headers": {"message-id": "20260302162626.18666.16540@mg.practice.example"}},
        **extra,
    }


def test_postmark_delivery_is_recorded_once_even_if_sent_twice(client):
    invitation = InvitationFactory()
    assert postmark(client, postmark_delivery(invitation), **basic_auth()).status_code == 200
    assert postmark(client, postmark_delivery(invitation), **basic_auth()).status_code == 200
    assert list(invitation.events.values_list("kind", flat=True)) == [EventKind.DELIVERED]
    report = DeliveryReport.objects.get()
    assert (report.provider, report.invitation, report.outcome) == ("Postmark", invitation, "delivered")


def test_postmark_hard_bounce_fails_the_invitation_and_blocks_the_address(client):
    invitation = InvitationFactory()
    assert postmark(client, postmark_bounce(invitation), **basic_auth()).status_code == 200
    invitation.refresh_from_db()
    invitation.patient.refresh_from_db()
    assert invitation.status == Status.FAILED and "bounced" in invitation.failure_reason
    assert invitation.patient.bounced_email == invitation.email


def test_postmark_spam_complaint_opts_the_address_out(client):
    invitation = InvitationFactory()
    postmark(client, postmark_complaint(invitation), **basic_auth())
    assert EmailOptOut.objects.get(practice=invitation.practice, email=invitation.email).reason == OptOutReason.SPAM_COMPLAINT


@pytest.mark.parametrize("headers", [{}, basic_auth("hook-user:wrong")])
def test_postmark_webhook_without_valid_auth_changes_nothing(client, headers):
    invitation = InvitationFactory()
    response = postmark(client, postmark_bounce(invitation), **headers)
    assert response.status_code in (400, 401, 403)
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT
    assert not DeliveryReport.objects.exists()


def test_mailgun_delivery_and_permanent_failure(client):
    invitation = InvitationFactory()
    assert mailgun(client, mailgun_event(invitation, "delivered"), **basic_auth()).status_code == 200
    failed = mailgun_event(invitation, "failed", severity="permanent", reason="bounce",
                           **{"delivery-status": {"code": 550, "message": "5.1.1 mailbox unavailable", "description": ""}})
    assert mailgun(client, failed, **basic_auth()).status_code == 200
    assert mailgun(client, failed, **basic_auth()).status_code == 200  # provider retry: applied once
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
    kinds = list(invitation.events.values_list("kind", flat=True))
    assert kinds.count(EventKind.BOUNCED) == 1 and kinds.count(EventKind.DELIVERED) == 1
    assert DeliveryReport.objects.count() == 2


def test_mailgun_complaint_opts_out(client):
    invitation = InvitationFactory()
    mailgun(client, mailgun_event(invitation, "complained"), **basic_auth())
    assert EmailOptOut.objects.filter(practice=invitation.practice, email=invitation.email).exists()


def test_mailgun_with_a_bad_signature_changes_nothing(client):
    invitation = InvitationFactory()
    failed = mailgun_event(invitation, "failed", severity="permanent", reason="bounce")
    response = mailgun(client, failed, key="not-the-key", **basic_auth())
    assert response.status_code in (400, 403)
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT


def test_a_hard_bounce_blocks_the_next_invite(client):
    from invitations import services
    from tests.clock import NOW

    invitation = InvitationFactory()
    postmark(client, postmark_bounce(invitation), **basic_auth())
    patient = invitation.patient
    patient.refresh_from_db()
    outcome = services.invite(patient, now=NOW.replace(hour=23), actor=None, source="manual")
    assert not outcome.created
    assert "hard_bounce" in [reason.code for reason in outcome.reasons]


def test_reports_for_unknown_messages_are_stored_but_change_nothing(client):
    payload = postmark_delivery(InvitationFactory.build(public_id="00000000-0000-0000-0000-000000000000"))
    payload["Metadata"] = {}
    payload["MessageID"] = "not-ours"
    assert postmark(client, payload, **basic_auth()).status_code == 200
    assert DeliveryReport.objects.get().outcome == "no matching invitation"


def test_a_hard_bounce_blocks_family_members_sharing_the_address(client):
    from invitations import eligibility
    from tests.clock import NOW

    invitation = InvitationFactory()
    sibling = PatientFactory(practice=invitation.practice, email=invitation.email, first_name="Sib")
    elsewhere = PatientFactory(email=invitation.email)  # another practice: its own business
    postmark(client, postmark_bounce(invitation), **basic_auth())
    sibling.refresh_from_db()
    elsewhere.refresh_from_db()
    assert "hard_bounce" in [r.code for r in eligibility.reasons_for(sibling, now=NOW)]
    assert elsewhere.bounced_email == ""


# -- only the configured provider, only with the secret ---------------------------------------

PROVIDERS = ["amazon_ses", "brevo", "mailersend", "mailgun", "mailjet", "mailtrap", "mandrill", "postal",
             "postmark", "resend", "sendgrid", "sparkpost", "unisender_go", "nosuch"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_with_no_provider_configured_no_tracking_url_answers(client, settings, provider):
    """The default set-up: an unauthenticated "bounce" naming a known invitation changes nothing."""
    settings.EMAIL_PROVIDER = ""
    invitation = InvitationFactory()
    response = client.post(f"/anymail/{provider}/tracking/", json.dumps(postmark_bounce(invitation)),
                           content_type="application/json", **basic_auth())
    assert response.status_code == 404 and response.json()["error"] == "not_found"
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT and not DeliveryReport.objects.exists()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("auth", [{}, basic_auth("hook-user:wrong"), {"HTTP_AUTHORIZATION": "Basic ????"}])
def test_unauthenticated_calls_get_4xx_on_every_url_and_store_nothing(client, settings, provider, auth):
    settings.EMAIL_PROVIDER = "mailgun"
    response = client.post(f"/anymail/{provider}/tracking/", json.dumps({"junk": True}), content_type="application/json", **auth)
    assert 400 <= response.status_code < 500
    assert not DeliveryReport.objects.exists()


def test_a_provider_without_the_secret_refuses_everyone(client, settings):
    settings.EMAIL_PROVIDER = "postmark"
    settings.ANYMAIL = {}
    invitation = InvitationFactory()
    assert postmark(client, postmark_bounce(invitation), **basic_auth()).status_code == 403
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT


def test_a_missing_provider_setting_is_a_503_that_says_which_not_a_500(client, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}  # Mailgun's signing key is missing
    invitation = InvitationFactory()
    response = mailgun(client, mailgun_event(invitation, "delivered"), **basic_auth())
    assert response.status_code == 503 and "WEBHOOK_SIGNING_KEY" in response.json()["detail"]
    assert not DeliveryReport.objects.exists()
