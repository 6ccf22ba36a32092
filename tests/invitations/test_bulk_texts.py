"""Activate Now, the monthly re-invite and resend runs by text message, through the real twilio client
against the local Twilio stand-in: the practice's channels (email, then a text for those without a
usable email; both; email only), per-channel counts in the preview and the run's figures, a text link
that registers, and numbers Twilio refuses (failed with the reason, learned by the chart and the
opt-out list). Throttling, deadlines, duplicates and dying workers: test_bulk_texts_safety.py."""

import datetime

import pytest
from django.core import mail

from invitations.bulk import runs
from invitations.models import (
    EventKind,
    Invitation,
    InvitationEvent,
    RevokeReason,
    Source,
    Status,
    TextStatus,
)
from invitations.models.bulk_runs import BulkRunKind, BulkRunStatus
from patients.models import BulkChannels, SmsOptOut, SmsOptOutReason
from tests.clock import NOW
from tests.factories import PatientFactory, UserFactory
from tests.invitations import bulk_texting
from tests.invitations.bulk_texting import (
    assert_each_texted_once_with_a_working_link,
    bulk_texting_practice,
    run_now,
    start_held_run,
    textable_patient,
    token_of,
)
from tests.invitations.factories import InvitationFactory
from tests.twilio_standin import INVALID_NUMBER, NOT_MOBILE, UNSUBSCRIBED

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
# The fixtures this module uses, bound where pytest looks for them (tests/invitations/bulk_texting.py).
_twilio_server, twilio, fresh_sms_rate, quiet_twilio = (
    bulk_texting._twilio_server, bulk_texting.twilio, bulk_texting.fresh_sms_rate, bulk_texting.quiet_twilio,
)


def emailed() -> list[str]:
    return sorted(address for message in mail.outbox for address in message.to)


# -- the preview ---------------------------------------------------------------------------------


def test_the_preview_counts_emails_and_texts_under_the_practices_channels():
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    for i in range(3):
        textable_patient(practice, email=f"both{i}@example.com")  # reachable both ways: an email
    for _ in range(2):
        textable_patient(practice)  # no address: a text
    PatientFactory(practice=practice, email="")  # neither: no address, no number, no text consent
    textable_patient(practice, sms_consent=False)  # no email, no text consent

    preview = runs.preview(practice, now=NOW)
    assert (preview.considered, preview.eligible, preview.emails, preview.texts) == (7, 5, 3, 2)
    assert preview.messages == [("Emails", 3), ("Texts", 2)]
    assert preview.skip_counts == {"missing_email": 2, "missing_mobile": 1, "no_sms_consent": 2}

    practice.bulk_channels = BulkChannels.BOTH
    both = runs.preview(practice, now=NOW)
    assert (both.eligible, both.emails, both.texts) == (5, 3, 5)

    practice.bulk_channels = BulkChannels.EMAIL
    email_only = runs.preview(practice, now=NOW)
    assert (email_only.eligible, email_only.emails, email_only.texts) == (3, 3, 0)
    assert email_only.skip_counts == {"missing_email": 4}


# -- the channels ----------------------------------------------------------------------------------


def test_email_then_text_emails_those_with_an_address_and_texts_the_others_each_once(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks, client
):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    staff = UserFactory()
    by_email = [textable_patient(practice, email=f"p{i}@example.com") for i in range(3)]
    by_text = [textable_patient(practice) for _ in range(4)]
    textable_patient(practice, sms_consent=False)  # reachable by neither

    run = run_now(practice, django_capture_on_commit_callbacks, actor=staff, chunk_size=3)

    assert (run.status, run.channels, run.considered, run.targeted, run.skip_counts) == (
        BulkRunStatus.DONE, BulkChannels.EMAIL_THEN_TEXT, 8, 7, {"missing_email": 1, "no_sms_consent": 1},
    )
    assert (run.invited, run.sent, run.failed) == (7, 7, 0)
    assert (run.emails_sent, run.emails_failed, run.texts_sent, run.texts_failed) == (3, 0, 4, 0)
    assert emailed() == sorted(p.email for p in by_email)
    assert_each_texted_once_with_a_working_link(quiet_twilio, by_text)
    texted = Invitation.objects.filter(by_text=True)
    assert set(texted.values_list("by_email", "email", "source", "created_by", "text_status")) == {
        (False, "", Source.BULK, staff.pk, TextStatus.QUEUED)
    }
    assert not Invitation.objects.filter(by_email=True, by_text=True).exists()
    created = set(InvitationEvent.objects.filter(kind=EventKind.CREATED).values_list("detail", flat=True))
    assert created == {"Activate Now (by email)", "Activate Now (by text message)"}

    # The text's link opens the registration page.
    message = quiet_twilio.accepted()[0]
    assert message["body"].startswith("Maple Street Dental: set up your patient portal account: https://portal.example.test/t/")
    response = client.get(f"/t/{token_of(message)}/")
    assert response.status_code == 200 and response.templates[0].name == "portal/register.html"
    invitation = Invitation.find_by_token(token_of(message))
    assert invitation.events.filter(kind=EventKind.LINK_OPENED, detail="From the text").exists()


def test_both_sends_an_email_and_a_text_to_each_patient_and_counts_the_invitation_once(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks
):
    practice = bulk_texting_practice(BulkChannels.BOTH)
    both = [textable_patient(practice, email=f"p{i}@example.com") for i in range(4)]
    email_only = PatientFactory(practice=practice)  # no mobile number: the email alone
    text_only = textable_patient(practice)

    run = run_now(practice, django_capture_on_commit_callbacks, chunk_size=4)

    assert (run.targeted, run.sent, run.failed) == (6, 6, 0)
    assert (run.emails_sent, run.texts_sent) == (5, 5)
    assert emailed() == sorted([p.email for p in both] + [email_only.email])
    assert_each_texted_once_with_a_working_link(quiet_twilio, both + [text_only])
    invitation = Invitation.objects.get(patient=both[0])
    assert (invitation.by_email, invitation.by_text, invitation.status) == (True, True, Status.SENT)
    assert invitation.sent_at == NOW and invitation.text_sent_at is not None
    assert invitation.token_hash != invitation.text_token_hash  # a link per channel
    assert invitation.events.get(kind=EventKind.CREATED).detail == "Activate Now (by email and text message)"


@pytest.mark.parametrize("texts_enabled, channels", [(True, BulkChannels.EMAIL), (False, BulkChannels.BOTH)])
def test_a_practice_that_sends_email_only_sends_no_text(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks, texts_enabled, channels
):
    practice = bulk_texting_practice(channels, text_invitations_enabled=texts_enabled)
    with_address = textable_patient(practice, email="has@example.com")
    textable_patient(practice)

    run = run_now(practice, django_capture_on_commit_callbacks)

    assert (run.channels, run.targeted, run.sent, run.texts_sent) == (BulkChannels.EMAIL, 1, 1, 0)
    assert run.skip_counts == {"missing_email": 1}
    assert emailed() == [with_address.email]
    assert quiet_twilio.stats()["requests"] == 0
    assert not Invitation.objects.filter(by_text=True).exists()


def test_a_run_keeps_the_channels_it_started_with(quiet_twilio, django_capture_on_commit_callbacks, eager_celery):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    texted = textable_patient(practice)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    practice.bulk_channels = BulkChannels.EMAIL  # changed while the run waits for a worker
    practice.save()
    with django_capture_on_commit_callbacks(execute=True):
        runs.chunks.enqueue(list(run.chunks.values_list("pk", flat=True)))
    run.refresh_from_db()
    assert (run.status, run.texts_sent) == (BulkRunStatus.DONE, 1)
    assert_each_texted_once_with_a_working_link(quiet_twilio, [texted])


# -- what Twilio refuses -----------------------------------------------------------------------------


def test_numbers_twilio_refuses_fail_with_the_reason_teach_the_chart_and_the_run_finishes(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks
):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    good = [textable_patient(practice) for _ in range(2)]
    invalid, unsubscribed, landline = (textable_patient(practice, number=n) for n in (INVALID_NUMBER, UNSUBSCRIBED, NOT_MOBILE))

    run = run_now(practice, django_capture_on_commit_callbacks)

    assert (run.status, run.targeted, run.sent, run.failed) == (BulkRunStatus.DONE, 5, 2, 3)
    assert (run.texts_sent, run.texts_failed) == (2, 3)
    assert quiet_twilio.stats()["refused"] == {"21211": 1, "21610": 1, "21614": 1}
    assert sorted(m["to"] for m in quiet_twilio.accepted()) == sorted(p.mobile_phone for p in good)
    for refused, words in ((invalid, "not a valid number"), (unsubscribed, "replied stop"), (landline, "not a mobile")):
        invitation = Invitation.objects.get(patient=refused)
        assert (invitation.status, invitation.text_status) == (Status.FAILED, TextStatus.FAILED)
        assert words in invitation.text_error.lower() and invitation.failure_reason == invitation.text_error
        assert invitation.events.filter(kind=EventKind.TEXT_FAILED).count() == 1
    invalid.refresh_from_db()
    landline.refresh_from_db()
    assert invalid.undeliverable_mobile == INVALID_NUMBER and landline.undeliverable_mobile == NOT_MOBILE
    assert SmsOptOut.objects.get(practice=practice, phone=UNSUBSCRIBED).reason == SmsOptOutReason.PROVIDER
    # The next run skips them for what Twilio said, and says why.
    later = runs.preview(practice, now=NOW + datetime.timedelta(days=8))
    assert later.skip_counts["undeliverable_mobile"] == 2 and later.skip_counts["sms_opted_out"] == 1


def test_a_both_invitation_whose_text_is_refused_stays_sent_by_its_email(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks
):
    practice = bulk_texting_practice(BulkChannels.BOTH)
    refused = textable_patient(practice, email="still@example.com", number=INVALID_NUMBER)
    run = run_now(practice, django_capture_on_commit_callbacks)
    invitation = Invitation.objects.get(patient=refused)
    assert (invitation.status, invitation.text_status, invitation.email_failed_at) == (Status.SENT, TextStatus.FAILED, None)
    assert (run.sent, run.failed, run.emails_sent, run.texts_failed) == (1, 0, 1, 1)
    assert emailed() == ["still@example.com"]


# -- the other kinds of run ----------------------------------------------------------------------------


def test_a_resend_run_replaces_the_link_by_text(quiet_twilio, eager_celery, django_capture_on_commit_callbacks):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    texted = textable_patient(practice)
    old = InvitationFactory(
        patient=texted, email="", by_email=False, by_text=True, text_to=texted.mobile_phone, text_status=TextStatus.QUEUED,
        created_at=NOW - datetime.timedelta(hours=2),
    )
    run = run_now(practice, django_capture_on_commit_callbacks, kind=BulkRunKind.RESEND, patient_ids=[texted.pk])
    assert (run.targeted, run.sent, run.texts_sent) == (1, 1, 1)
    old.refresh_from_db()
    assert (old.status, old.revoke_reason) == (Status.REVOKED, RevokeReason.RESENT)
    new = Invitation.objects.get(patient=texted, is_latest=True)
    assert (new.source, new.by_text, new.status) == (Source.BULK_RESEND, True, Status.SENT)
    assert_each_texted_once_with_a_working_link(quiet_twilio, [texted])


def test_the_monthly_reinvite_texts_patients_without_a_usable_email(
    quiet_twilio, eager_celery, django_capture_on_commit_callbacks
):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT, monthly_reinvite_enabled=True)
    texted = textable_patient(practice)
    InvitationFactory(
        patient=texted, email="", by_email=False, by_text=True, text_to=texted.mobile_phone, status=Status.EXPIRED,
        created_at=NOW - datetime.timedelta(days=30),
    )
    run = run_now(practice, django_capture_on_commit_callbacks, kind=BulkRunKind.MONTHLY)
    assert (run.targeted, run.sent, run.texts_sent) == (1, 1, 1)
    assert Invitation.objects.get(patient=texted, is_latest=True).source == Source.MONTHLY
    assert_each_texted_once_with_a_working_link(quiet_twilio, [texted])


def test_the_progress_figures_count_each_channel(quiet_twilio, django_capture_on_commit_callbacks):
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    textable_patient(practice, email="p@example.com")
    textable_patient(practice)
    textable_patient(practice, number=INVALID_NUMBER)
    run = start_held_run(practice, django_capture_on_commit_callbacks)
    runs.chunks.process_chunk(run.chunks.get().pk, now=NOW)
    totals = runs.chunks.chunk_totals(run.pk)
    assert {key: totals[key] for key in ("invited", "sent", "failed", "processed")} == {
        "invited": 3, "sent": 2, "failed": 1, "processed": 3,
    }
    assert (totals["emails_sent"], totals["emails_failed"], totals["texts_sent"], totals["texts_failed"]) == (1, 0, 1, 1)
