"""The same guarantees for a text as for an email, through the real twilio client and the stand-in:
claimed before it is sent (a redelivered task sends nothing twice, another worker's claim is left,
a lapsed one is sent again with a new link), a call without an answer is never repeated, Twilio's
5xx and 429 are retried by the task and the text then goes once, a retry chain that runs out fails
the text with the reason, an invitation by email and text fails only when both failed, and the
sweep sends a text whose task was lost (once) and gives up on a lost retry chain. Query counts."""

import datetime

import pytest
from anymail.exceptions import AnymailRecipientsRefused

from core.sending import ratelimit
from invitations import tasks
from invitations.texts import delivery
from invitations.models.events import EventKind
from invitations.models import Invitation, Status, TextStatus
from invitations.services import RETRY_GIVE_UP, UNSENT_GRACE
from invitations.models.text_transitions import TEXT_CLAIM_LEASE
from invitations.vocabulary import SendBy
from tests.clock import NOW
from tests.invitations.text_fixtures import (  # noqa: F401  (fixtures)
    MOBILE, _twilio_server, events, fresh_sms_rate, invite_now, patient, text_path, texted, texting, texting_practice,
    token_in, twilio,
)
from tests.twilio_standin import FROM_NUMBER, INVALID_NUMBER
from invitations import services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def waiting(patient, django_capture_on_commit_callbacks) -> Invitation:
    """An invitation by text whose task has not run (its message is on the broker, or lost)."""
    with django_capture_on_commit_callbacks(execute=False):
        invitation = services.invite(patient, now=NOW, send_by=SendBy.TEXT).invitation
    assert invitation.text_status == TextStatus.PENDING
    return invitation


def kinds(invitation) -> list[str]:
    return [kind for kind, _ in events(invitation)]


# -- the claim -------------------------------------------------------------------------------------


def test_a_redelivered_task_sends_nothing_twice(texting, waiting):
    assert tasks.send_invitation_text.run(waiting.pk) == "sent"
    assert tasks.send_invitation_text.run(waiting.pk) == "not-claimed"
    assert len(texting.accepted()) == 1
    assert kinds(waiting) == [EventKind.CREATED, EventKind.TEXT_QUEUED]


def test_a_claim_held_by_another_worker_is_left_alone(texting, waiting):
    assert Invitation.objects.claim_text(waiting.pk, NOW) is not None  # worker 1, in its call to Twilio
    held = Invitation.objects.filter(pk=waiting.pk).values("text_claimed_at", "text_token_hash").get()
    assert tasks.send_invitation_text.run(waiting.pk) == "not-claimed"
    assert Invitation.objects.filter(pk=waiting.pk).values("text_claimed_at", "text_token_hash").get() == held
    assert texting.stats()["requests"] == 0


def test_an_interrupted_send_is_sent_again_with_a_new_link_once_the_claim_lapses(texting, waiting, frozen):
    first_token = Invitation.objects.claim_text(waiting.pk, NOW)  # that worker died
    frozen.move_to(NOW + TEXT_CLAIM_LEASE - SECOND)
    assert tasks.send_invitation_text.run(waiting.pk) == "not-claimed"
    frozen.move_to(NOW + TEXT_CLAIM_LEASE)
    assert tasks.send_invitation_text.run(waiting.pk) == "sent"
    [message] = texting.accepted()
    token = token_in(message["body"])
    assert token != first_token
    assert Invitation.find_by_token(first_token) is None  # a text the dead worker may have sent no longer works
    assert Invitation.find_by_token(token).pk == waiting.pk
    waiting.refresh_from_db()
    assert (waiting.text_attempts, waiting.text_status, waiting.text_sent_at) == (2, TextStatus.QUEUED, NOW + TEXT_CLAIM_LEASE)


def test_a_text_whose_link_was_revoked_before_the_worker_ran_is_not_sent(texting, waiting):
    waiting.patient.mobile_phone = "+16175550177"  # staff corrected the number meanwhile
    waiting.patient.save()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.revoke_reason) == (Status.REVOKED, "mobile_changed")
    assert tasks.send_invitation_text.run(waiting.pk) == "not-claimed"
    assert texting.stats()["requests"] == 0


def test_a_text_whose_link_ran_out_before_the_worker_ran_is_not_sent(texting, waiting, frozen):
    frozen.move_to(waiting.expires_at)
    assert tasks.send_invitation_text.run(waiting.pk) == "expired"
    waiting.refresh_from_db()
    assert waiting.status == Status.EXPIRED and texting.stats()["requests"] == 0


# -- what the text service answers ----------------------------------------------------------------


def test_a_call_that_never_answered_fails_the_text_and_is_never_tried_again(texting, waiting, settings, frozen):
    settings.TWILIO_TIMEOUT = 0.3
    texting.configure(latency=1.0)  # Twilio takes the text, but its answer comes too late
    assert tasks.send_invitation_text.run(waiting.pk) == "failed"
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert waiting.text_error.startswith("Twilio did not answer in time, so the text may or may not have been sent")
    assert events(waiting)[-1] == (EventKind.TEXT_FAILED, waiting.text_error)
    texting.configure(latency=0)
    assert tasks.send_invitation_text.run(waiting.pk) == "not-claimed"  # a redelivery
    frozen.move_to(NOW + RETRY_GIVE_UP)
    assert delivery.requeue_unsent_texts(now=NOW + RETRY_GIVE_UP) == 0  # nor the sweep
    assert texting.stats()["requests"] == 1


class Retried(Exception):
    """What the task's retry raises here: the worker would run it again after `countdown`."""


@pytest.fixture
def run_with_retries(monkeypatch):
    """Run the text task as a worker would, each retry it asks for at once (the countdown passed);
    `.countdowns` holds the waits it asked for."""
    task = tasks.send_invitation_text
    countdowns = []
    monkeypatch.setattr(task, "retry", lambda *, exc, countdown: countdowns.append(countdown) or Retried())

    def run(invitation_id: int) -> str:
        for retries in range(task.max_retries + 1):
            task.push_request(retries=retries)
            try:
                return task.run(invitation_id)
            except Retried:
                continue
            finally:
                task.pop_request()
        raise AssertionError("the task asked for a retry after its last one")

    run.countdowns = countdowns
    return run


def test_a_5xx_is_retried_by_the_task_and_the_text_then_goes_once(texting, waiting, run_with_retries):
    texting.configure(fail_next=1, fail_status=503)
    assert run_with_retries(waiting.pk) == "sent"
    assert run_with_retries.countdowns == [30]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status, waiting.text_attempts) == (Status.SENT, TextStatus.QUEUED, 2)
    assert len(texted(texting)) == 1 and texting.stats()["failed_5xx"] == 1
    assert events(waiting)[1] == (EventKind.SEND_RETRY, "Text: Twilio failed to answer (Twilio error 20503, HTTP 503).")
    assert kinds(waiting) == [EventKind.CREATED, EventKind.SEND_RETRY, EventKind.TEXT_QUEUED]


def test_a_429_slows_down_and_the_task_sends_the_text_once(texting, waiting, run_with_retries):
    texting.configure(rate_limit=1, burst=1)
    texting.client().messages.create(to="+16175550100", from_=FROM_NUMBER, body="another sender of the account")
    assert run_with_retries(waiting.pk) == "sent"
    assert len(run_with_retries.countdowns) >= 1
    assert texting.stats()["throttled"] >= 1
    assert len(texted(texting)) == 1
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status) == (Status.SENT, TextStatus.QUEUED)
    assert EventKind.SEND_RETRY not in kinds(waiting)  # being slowed down is no error


def test_a_single_text_waits_its_turn_behind_a_bulk_runs_texts_instead_of_failing(texting, waiting, settings):
    """A bulk chunk keeps several of the account's slots reserved ahead (one per text in flight);
    a single invitation's text queues behind them as an email does, instead of being told
    "no slot" on every retry until the task gives up."""
    settings.PORTAL_SMS_RATE_LIMIT = 1  # a long code: one text a second
    rate = ratelimit.limiter("sms")
    for _ in range(6):  # a chunk's texts in flight: the next free slot is 6 s away
        assert rate.reserve_slot(1, max_wait=60) is not None
    assert tasks.send_invitation_text.run(waiting.pk) == "sent"
    assert len(texted(texting)) == 1


def test_the_task_gives_up_after_its_retries_and_fails_the_text_with_the_reason(texting, waiting, run_with_retries):
    texting.configure(fail_next=100, fail_status=500)
    assert run_with_retries(waiting.pk) == "failed"
    retries = tasks.send_invitation_text.max_retries
    assert run_with_retries.countdowns == [tasks.retry_delay(n) for n in range(retries)]
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert waiting.text_error == "Gave up after repeated errors: Twilio failed to answer (Twilio error 20500, HTTP 500)."
    assert waiting.failure_reason == waiting.text_error
    assert texting.stats()["requests"] == retries + 1 and texted(texting) == []
    assert kinds(waiting) == [EventKind.CREATED] + [EventKind.SEND_RETRY] * (retries + 1) + [EventKind.TEXT_FAILED]


# -- an invitation by email and text ----------------------------------------------------------------


@pytest.fixture
def email_refused(monkeypatch):
    def refuse(*args, **kwargs):
        raise AnymailRecipientsRefused("Recipient address rejected")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)


def test_an_email_refused_while_the_text_is_live_leaves_the_invitation_open(texting, patient, invite_now, email_refused, client):
    invitation = invite_now(patient, SendBy.BOTH).invitation
    assert (invitation.status, invitation.text_status) == (Status.SENT, TextStatus.QUEUED)
    assert invitation.email_failed_at == NOW and invitation.failure_reason
    path = text_path(token_in(texted(texting)[0]["body"]))
    assert client.get(path).status_code == 200  # the text's link still registers


def test_an_invitation_by_email_and_text_fails_only_when_both_failed(texting, patient, invite_now, email_refused):
    patient.mobile_phone = INVALID_NUMBER
    patient.save()
    invitation = invite_now(patient, SendBy.BOTH).invitation
    assert (invitation.status, invitation.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert invitation.email_failed_at == NOW and invitation.ended_at == NOW


def test_a_refused_text_leaves_an_invitation_whose_email_went_open(texting, patient, invite_now):
    patient.mobile_phone = INVALID_NUMBER
    patient.save()
    invitation = invite_now(patient, SendBy.BOTH).invitation
    assert (invitation.status, invitation.text_status, invitation.sent_at) == (Status.SENT, TextStatus.FAILED, NOW)


# -- the unsent-text sweep ---------------------------------------------------------------------------


def test_the_sweep_sends_a_text_whose_task_was_lost_once(texting, waiting, eager_celery, django_capture_on_commit_callbacks):
    assert delivery.requeue_unsent_texts(now=NOW + UNSENT_GRACE - SECOND) == 0  # its task may still come
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        assert delivery.requeue_unsent_texts(now=NOW + UNSENT_GRACE) == 1
    assert len(enqueued) == 1
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        assert delivery.requeue_unsent_texts(now=NOW + UNSENT_GRACE + SECOND) == 0
    assert enqueued == []
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status) == (Status.SENT, TextStatus.QUEUED)
    assert len(texting.accepted()) == 1


def test_the_sweep_gives_up_on_a_lost_retry_chain(texting, waiting, django_capture_on_commit_callbacks):
    Invitation.objects.claim_text(waiting.pk, NOW)  # tried, met a 5xx, released for a retry that never came
    Invitation.objects.release_texts([(waiting.pk, "Twilio failed to answer (Twilio HTTP 503).")], now=NOW)
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        assert delivery.requeue_unsent_texts(now=NOW + RETRY_GIVE_UP - SECOND) == 0
        waiting.refresh_from_db()
        assert waiting.text_status == TextStatus.PENDING
        assert delivery.requeue_unsent_texts(now=NOW + RETRY_GIVE_UP) == 0
    assert enqueued == []  # the retry belongs to its chain alone: no second chain
    waiting.refresh_from_db()
    assert (waiting.status, waiting.text_status) == (Status.FAILED, TextStatus.FAILED)
    assert waiting.text_error == "Gave up after repeated errors: the text service could not be reached for hours."
    assert texting.stats()["requests"] == 0


def test_the_sweep_task_sends_each_lost_channel_of_an_invitation_by_email_and_text_once(
    texting, patient, eager_celery, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False):
        invitation = services.invite(patient, now=NOW, send_by=SendBy.BOTH).invitation
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        delivery.requeue_unsent_texts(now=NOW + UNSENT_GRACE)
        services.requeue_unsent(now=NOW + UNSENT_GRACE)
    assert len(enqueued) == 2
    for run in enqueued:
        run()
    invitation.refresh_from_db()
    assert (invitation.status, invitation.text_status, invitation.sent_at) == (Status.SENT, TextStatus.QUEUED, NOW)
    assert len(texted(texting)) == 1


# -- query counts -------------------------------------------------------------------------------------


def test_sending_a_text_takes_a_bounded_number_of_queries(texting, waiting, django_assert_max_num_queries):
    # Load, whether it may still be sent, claim, the wording, the account's rate (4 in the database
    # store, none in Redis), the mark (5 and its savepoint).
    with django_assert_max_num_queries(16):
        assert tasks.send_invitation_text.run(waiting.pk) == "sent"


def test_a_refused_text_takes_a_bounded_number_of_queries(texting, waiting, django_assert_max_num_queries):
    Invitation.objects.filter(pk=waiting.pk).update(text_to=INVALID_NUMBER)
    waiting.patient.__class__.objects.filter(pk=waiting.patient_id).update(mobile_phone=INVALID_NUMBER)
    with django_assert_max_num_queries(17):  # as above, and what the refusal teaches
        assert tasks.send_invitation_text.run(waiting.pk) == "failed"
