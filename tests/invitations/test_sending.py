"""Creating an invitation, enqueueing after commit, and the send task's exactly-once claim."""

import datetime

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail

from invitations import services, tasks
from invitations.models import (
    SEND_CLAIM_LEASE,
    EventKind,
    Invitation,
    Source,
    Status,
    hash_token,
)
from invitations.wording.email_html import DEFAULT_SUBJECT
from tests.clock import NOW
from tests.factories import PatientFactory, PracticeFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_patient():
    practice = PracticeFactory(name="Maple Street Dental", contact_phone="(617) 555-0142")
    return PatientFactory(
        practice=practice, first_name="Zoë", last_name="Quintanilla", email="zoe@example.com",
        date_of_birth=datetime.date(1984, 11, 3),
    )


def pending_invitation(patient) -> Invitation:
    outcome = services.invite(patient, now=NOW, source=Source.MANUAL)
    assert outcome.created, outcome.reasons
    return outcome.invitation


def test_it_enqueues_the_email_only_after_the_transaction_commits(
    frozen, eager_celery, email_patient, django_capture_on_commit_callbacks
):
    staff = UserFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = services.invite(email_patient, now=NOW, actor=staff)
    assert outcome.created
    assert len(callbacks) == 1
    assert mail.outbox == []  # nothing sent inside the transaction
    invitation = outcome.invitation
    assert invitation.status == Status.PENDING
    assert invitation.token_hash is None  # the token is made by the worker
    assert invitation.created_by == staff
    assert list(invitation.events.values_list("kind", "actor")) == [(EventKind.CREATED, staff.pk)]

    callbacks[0]()  # the commit happens: the eager task runs
    assert len(mail.outbox) == 1
    invitation.refresh_from_db()
    assert invitation.status == Status.SENT
    assert invitation.sent_at == NOW
    assert invitation.provider_message_id != ""


def test_it_creates_nothing_and_enqueues_nothing_for_an_ineligible_patient(
    frozen, email_patient, django_capture_on_commit_callbacks
):
    email_patient.email_consent = False
    email_patient.save()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcome = services.invite(email_patient, now=NOW)
    assert not outcome.created
    assert [r.code for r in outcome.reasons] == ["no_consent"]
    assert callbacks == []
    assert not Invitation.objects.exists()


def test_the_task_run_twice_sends_one_email(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    assert tasks.send_invitation.run(invitation.pk) == "sent"
    assert tasks.send_invitation.run(invitation.pk) == "not-claimed"
    assert len(mail.outbox) == 1
    kinds = list(invitation.events.values_list("kind", flat=True))
    assert kinds == [EventKind.CREATED, EventKind.SENT]


def test_a_worker_holding_the_claim_blocks_a_second_worker(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    assert invitation.claim_for_sending(NOW) is not None  # worker 1, still sending
    assert services.deliver(invitation.pk, now=NOW + datetime.timedelta(seconds=5)) == "not-claimed"
    assert mail.outbox == []
    # Worker 1 died: after the lease a redelivered task may send it.
    assert services.deliver(invitation.pk, now=NOW + SEND_CLAIM_LEASE) == "sent"
    assert len(mail.outbox) == 1


def test_the_email_carries_the_link_whose_hash_is_stored(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    services.deliver(invitation.pk, now=NOW)
    message = mail.outbox[0]
    link = next(word for word in message.body.split() if word.startswith("https://portal.example.test/invite/"))
    token = link.rstrip("/").rsplit("/", 1)[1]
    invitation.refresh_from_db()
    assert invitation.token_hash == hash_token(token)
    assert Invitation.find_by_token(token) == invitation
    html = message.alternatives[0][0]
    assert link in html


def test_the_email_has_no_last_name_birth_date_or_token_in_headers_or_metadata(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    services.deliver(invitation.pk, now=NOW)
    message = mail.outbox[0]
    invitation.refresh_from_db()
    token_link = next(w for w in message.body.split() if "/invite/" in w)
    token = token_link.rstrip("/").rsplit("/", 1)[1]

    headers = message.message().as_string().split("\n\n", 1)[0]
    params = message.anymail_test_params
    exposed = [headers, repr(params.get("metadata")), repr(params.get("tags")), message.subject]
    # Date of birth in every way it could be written (not a bare "1984": Message-ID is random digits).
    birth_date = ("1984-11-03", "11/03/1984", "11/3/1984", "November 3, 1984", "Nov. 3, 1984", "03/11/1984")
    for secret in ("Quintanilla", *birth_date, token, invitation.token_hash):
        for text in exposed:
            assert secret not in text
    # Not in the bodies either, except the token in the link itself.
    html = message.alternatives[0][0]
    for secret in ("Quintanilla", "1984", "November 3"):  # the bodies have no random digits
        assert secret not in message.body and secret not in html
    assert params["metadata"] == {"invitation": str(invitation.public_id)}
    assert params["tags"] == ["portal-invitation"]
    assert params["track_clicks"] is False


def test_the_email_greets_by_first_name_and_names_the_practice_and_expiry(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    services.deliver(invitation.pk, now=NOW)
    message = mail.outbox[0]
    assert message.subject == DEFAULT_SUBJECT.replace("[Practice Name]", "Maple Street Dental")
    assert message.to == ["zoe@example.com"]
    assert message.from_email.startswith('"Maple Street Dental"') or message.from_email.startswith("Maple Street Dental")
    html = message.alternatives[0][0]
    for part in (message.body, html):
        assert "Zoë" in part or "Zo&#235;" in part or "Zo\u00eb" in part
        assert "Maple Street Dental" in part
        assert "(617) 555-0142" in part
        # 7 days after March 2nd 2026, 15:00 UTC, in New York.
        assert "Monday, March 9, 2026" in part
    assert message.reply_to == ["office@practice.example"]


def test_a_permanent_refusal_marks_the_invitation_failed_with_the_reason(frozen, email_patient, monkeypatch):
    invitation = pending_invitation(email_patient)

    def refuse(self, *args, **kwargs):
        raise AnymailRecipientsRefused("Recipient address rejected")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    assert services.deliver(invitation.pk, now=NOW) == "failed"
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
    assert "rejected" in invitation.failure_reason
    assert invitation.ended_at == NOW


def test_a_client_error_from_the_provider_is_permanent(frozen, email_patient, monkeypatch):
    invitation = pending_invitation(email_patient)

    def bad_request(self, *args, **kwargs):
        raise AnymailAPIError("Invalid 'To' address", status_code=422)

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", bad_request)
    assert services.deliver(invitation.pk, now=NOW) == "failed"
    invitation.refresh_from_db()
    assert invitation.failure_reason.startswith("AnymailAPIError (HTTP 422)")


@pytest.mark.parametrize("error", [AnymailAPIError("busy", status_code=503), AnymailAPIError("slow down", status_code=429), ConnectionError("reset")])
def test_a_transient_error_retries_with_backoff_then_sends(frozen, email_patient, monkeypatch, error):
    invitation = pending_invitation(email_patient)
    calls = {"n": 0}
    real_send = __import__("django.core.mail", fromlist=["EmailMultiAlternatives"]).EmailMultiAlternatives.send

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise error
        return real_send(self, *args, **kwargs)

    retries = []

    def fake_retry(*, exc, countdown):
        retries.append(countdown)
        return RuntimeError("retry scheduled")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", flaky)
    monkeypatch.setattr(tasks.send_invitation, "retry", fake_retry)
    with pytest.raises(RuntimeError, match="retry scheduled"):
        tasks.send_invitation.run(invitation.pk)
    assert retries == [30]
    invitation.refresh_from_db()
    assert invitation.status == Status.PENDING
    assert invitation.sending_started_at is None  # released for the retry
    assert EventKind.SEND_RETRY in invitation.events.values_list("kind", flat=True)

    assert tasks.send_invitation.run(invitation.pk) == "sent"  # the retry
    assert len(mail.outbox) == 1


def test_it_gives_up_after_the_last_retry(frozen, email_patient, monkeypatch):
    invitation = pending_invitation(email_patient)

    def down(self, *args, **kwargs):
        raise AnymailAPIError("unavailable", status_code=502)

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", down)
    tasks.send_invitation.push_request(retries=tasks.SEND_MAX_RETRIES)
    try:
        assert tasks.send_invitation.run(invitation.pk) == "failed"
    finally:
        tasks.send_invitation.pop_request()
    invitation.refresh_from_db()
    assert invitation.status == Status.FAILED
    assert invitation.failure_reason.startswith("Gave up after repeated errors")


def test_backoff_grows_and_is_capped():
    assert [tasks.retry_delay(n) for n in range(8)] == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_it_does_not_send_a_link_that_was_revoked_before_the_worker_ran(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    email_patient.email = "someone.else@example.com"
    email_patient.save()
    assert services.deliver(invitation.pk, now=NOW) == "not-claimed"
    assert mail.outbox == []


def test_it_expires_instead_of_sending_a_link_that_already_ran_out(frozen, email_patient):
    invitation = pending_invitation(email_patient)
    assert services.deliver(invitation.pk, now=invitation.expires_at) == "expired"
    assert mail.outbox == []
    invitation.refresh_from_db()
    assert invitation.status == Status.EXPIRED
