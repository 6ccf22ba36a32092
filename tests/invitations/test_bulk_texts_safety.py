"""A bulk run's texts hold up as its emails do, through the real twilio client against the local
Twilio stand-in: 429s retried inside the run, a 1 message/s account that makes a chunk hand itself
on, a chunk waiting for the account's next slot, a chunk delivered twice, a worker dying mid-chunk,
an account Twilio refuses for hours, a text lost between the lists, and queries that do not grow
with the chunk."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.sending import ratelimit
from core.sending.transports import text as text_transport
from invitations.bulk import chunks, runs
from invitations.models import (
    SEND_GIVE_UP_AFTER,
    EventKind,
    Invitation,
    Status,
    TextStatus,
)
from invitations.models.bulk_runs import CHUNK_LEASE, BulkRunStatus, ChunkStatus
from patients.models import BulkChannels
from tests.clock import NOW
from tests.faults.backends import WorkerDied
from tests.invitations import bulk_texting
from tests.invitations.bulk_texting import (
    assert_each_texted_once_with_a_working_link,
    bulk_texting_practice,
    run_until_done,
    start_held_run,
    textable_patient,
    token_of,
)
from tests.invitations.test_bulk import statements

pytestmark = pytest.mark.django_db
# The fixtures this module uses, bound where pytest looks for them (tests/invitations/bulk_texting.py).
_twilio_server, twilio, fresh_sms_rate, quiet_twilio, handed_on_chunks = (
    bulk_texting._twilio_server, bulk_texting.twilio, bulk_texting.fresh_sms_rate, bulk_texting.quiet_twilio,
    bulk_texting.handed_on_chunks,
)


@pytest.fixture
def email_then_text_practice():
    return bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)


# -- Twilio's rate -----------------------------------------------------------------------------------


def test_429s_from_twilio_are_retried_inside_the_run_and_nobody_fails(
    email_then_text_practice, quiet_twilio, ticking, django_capture_on_commit_callbacks
):
    """Twilio takes 10 texts a second; we set no rate of our own. Its 429s slow every sender down
    and the texts are sent again in the same chunk: no task per text, no failure."""
    quiet_twilio.configure(rate_limit=10, burst=2)
    patients = [textable_patient(email_then_text_practice) for _ in range(20)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    assert run_until_done(run, capture=django_capture_on_commit_callbacks) == ["done"]
    assert quiet_twilio.stats()["throttled"] > 0
    assert_each_texted_once_with_a_working_link(quiet_twilio, patients)
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed, run.texts_sent) == (BulkRunStatus.DONE, 20, 0, 20)


def test_a_one_text_a_second_account_hands_the_chunk_on_and_every_text_goes_once(
    email_then_text_practice, quiet_twilio, settings, monkeypatch, handed_on_chunks, ticking, django_capture_on_commit_callbacks
):
    """A long code: Twilio and our shared rate both at 1 text a second, a chunk's time cut to 2.5 s.
    Each attempt sends what fits, releases the rest and hands the chunk on at once; the next
    attempt claims the rest with new links. Nobody is texted twice, nothing is throttled."""
    settings.PORTAL_SMS_RATE_LIMIT = 1
    quiet_twilio.configure(rate_limit=1)
    monkeypatch.setattr(chunks, "SEND_SECONDS", 2.5)
    patients = [textable_patient(email_then_text_practice) for _ in range(6)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()

    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(chunk.pk, now=NOW) == "continued"
    sent_first = quiet_twilio.stats()["accepted"]
    assert 1 <= sent_first < 6 and handed_on_chunks == [(chunk.pk, None)]  # handed on at once, no countdown
    chunk.refresh_from_db()
    assert (chunk.status, chunk.sent, chunk.texts_sent, chunk.invited) == (ChunkStatus.PENDING, sent_first, sent_first, 6)
    unsent = Invitation.objects.filter(text_status=TextStatus.PENDING)
    assert unsent.count() == 6 - sent_first and not unsent.filter(text_claimed_at__isnull=False).exists()
    assert not Invitation.objects.filter(events__kind=EventKind.SEND_RETRY).exists()  # never tried: no "delayed" entry

    outcomes = run_until_done(run, capture=django_capture_on_commit_callbacks)
    assert outcomes[-1] == "done" and set(outcomes[:-1]) <= {"continued"}
    stats = quiet_twilio.stats()
    assert (stats["recipients_texted_twice"], stats["throttled"]) == (0, 0)
    assert_each_texted_once_with_a_working_link(quiet_twilio, patients)
    run.refresh_from_db()
    assert (run.status, run.sent, run.texts_sent) == (BulkRunStatus.DONE, 6, 6)


def test_a_chunk_that_cannot_get_a_text_slot_waits_for_it_instead_of_spinning(
    email_then_text_practice, quiet_twilio, monkeypatch, handed_on_chunks, frozen, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(chunks, "SEND_SECONDS", 1.0)
    ratelimit.limiter("sms").slow_down(120)  # Twilio asked the account to wait two minutes
    [textable_patient(email_then_text_practice) for _ in range(3)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "waiting"
    assert len(handed_on_chunks) == 1 and 100 < handed_on_chunks[0][1] <= 120
    assert quiet_twilio.stats()["requests"] == 0
    assert not Invitation.objects.filter(text_claimed_at__isnull=False).exists()


# -- duplicates and dying workers ----------------------------------------------------------------------


def test_a_chunk_delivered_twice_texts_nobody_twice(email_then_text_practice, quiet_twilio, frozen, django_capture_on_commit_callbacks):
    patients = [textable_patient(email_then_text_practice) for _ in range(4)] + [textable_patient(email_then_text_practice, email="both@example.com")]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    assert chunks.process_chunk(chunk.pk, now=NOW) == "done"
    assert chunks.process_chunk(chunk.pk, now=NOW) == "not-claimed"
    assert chunks.process_chunk(chunk.pk, now=NOW + CHUNK_LEASE * 2) == "not-claimed"  # done stays done
    assert_each_texted_once_with_a_working_link(quiet_twilio, patients[:4])
    assert Invitation.objects.count() == 5


def dying_twilio(monkeypatch, *, survive: int, after_twilio_took_it: bool) -> list[str]:
    """Twilio's transport: the worker dies at text number `survive` + 1, before or just after
    Twilio took it. Returns the numbers Twilio was called for."""
    real_send = text_transport.TwilioTransport.send
    calls = []

    def send(self, text):
        calls.append(text.to)
        if len(calls) > survive and dying_twilio.dies:
            if after_twilio_took_it:
                real_send(self, text)
            raise WorkerDied()
        return real_send(self, text)

    dying_twilio.dies = True
    monkeypatch.setattr(text_transport.TwilioTransport, "send", send)
    return calls


@pytest.mark.parametrize("survive, after_twilio_took_it", [(0, False), (2, False), (2, True)])
def test_a_worker_dying_mid_chunk_is_resumed_by_the_sweep(
    email_then_text_practice, quiet_twilio, settings, monkeypatch, frozen, django_capture_on_commit_callbacks, survive, after_twilio_took_it
):
    """The worker dies before any text (survive=0), after two texts were marked (survive=2), or
    just after Twilio took the third text and before it was marked: the documented window, the one
    text that is sent again (with a new link; the first one no longer works). The chunk keeps its
    claim; the sweep re-enqueues it once the lease has run out, and every other text goes once."""
    monkeypatch.setattr(chunks, "MARK_SENT_EVERY_SECONDS", 0)  # marked after each text, as a slow Twilio would
    settings.PORTAL_SMS_CONCURRENCY = 1  # one text at a time, so "the third" is a known point
    patients = [textable_patient(email_then_text_practice) for _ in range(5)]
    calls = dying_twilio(monkeypatch, survive=survive, after_twilio_took_it=after_twilio_took_it)
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    with pytest.raises(WorkerDied):
        chunks.process_chunk(chunk.pk, now=NOW)
    chunk.refresh_from_db()
    assert chunk.status == ChunkStatus.CLAIMED
    assert Invitation.objects.filter(text_status=TextStatus.QUEUED).count() == survive
    in_flight = calls[survive] if after_twilio_took_it else None
    first_links = {m["to"]: token_of(m) for m in quiet_twilio.accepted()}

    dying_twilio.dies = False  # the next worker lives
    enqueued = []
    monkeypatch.setattr("invitations.tasks.process_bulk_chunk.apply_async", lambda args, **kw: enqueued.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=NOW + CHUNK_LEASE - datetime.timedelta(seconds=1)) == 0
    later = NOW + CHUNK_LEASE
    frozen.move_to(later)
    with django_capture_on_commit_callbacks(execute=True):
        assert runs.resume_stalled(now=later) == 1
    assert enqueued == [chunk.pk]
    assert chunks.process_chunk(chunk.pk, now=later) == "done"

    texted = sorted(m["to"] for m in quiet_twilio.accepted())
    expected = sorted([p.mobile_phone for p in patients] + ([in_flight] if in_flight else []))
    assert texted == expected  # each once, but for the text in flight when the worker died
    assert quiet_twilio.stats()["recipients_texted_twice"] == (1 if after_twilio_took_it else 0)
    if in_flight:
        assert Invitation.find_by_token(first_links[in_flight]) is None  # its first link was replaced
    assert set(Invitation.objects.values_list("status", "text_status")) == {(Status.SENT, TextStatus.QUEUED)}
    run.refresh_from_db()
    assert (run.status, run.invited, run.sent, run.texts_sent) == (BulkRunStatus.DONE, 5, 5, 5)
    chunk.refresh_from_db()
    assert chunk.attempts == 2


# -- a text service that fails -------------------------------------------------------------------------


def test_a_refused_account_defers_the_chunk_and_after_hours_fails_the_texts_with_the_reason(
    email_then_text_practice, quiet_twilio, frozen, django_capture_on_commit_callbacks
):
    """Twilio refuses our credentials. The chunk's emails go; its texts are released and the chunk
    deferred, nobody failed for it; once nothing has gone for `SEND_GIVE_UP_AFTER` the texts fail
    with the reason, and an invitation whose email went stays sent."""
    quiet_twilio.configure(auth_fail=True)
    email_then_text_practice.bulk_channels = BulkChannels.BOTH
    email_then_text_practice.save()
    both = textable_patient(email_then_text_practice, email="both@example.com")
    [textable_patient(email_then_text_practice) for _ in range(2)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    chunk = run.chunks.get()
    with pytest.raises(chunks.ChunkDeferred, match="Twilio refused our credentials"):
        chunks.process_chunk(chunk.pk, now=NOW)
    assert quiet_twilio.stats()["requests"] <= 8  # the send stopped at the first answers
    assert not Invitation.objects.filter(status=Status.FAILED).exists()
    assert not Invitation.objects.filter(text_claimed_at__isnull=False).exists()
    assert Invitation.objects.get(patient=both).status == Status.SENT  # by its email
    run.refresh_from_db()
    assert run.is_running and "Twilio refused our credentials" in run.send_problem

    idle_since = NOW + datetime.timedelta(minutes=1)
    for at in (idle_since, idle_since + SEND_GIVE_UP_AFTER - datetime.timedelta(minutes=1)):
        frozen.move_to(at)
        with pytest.raises(chunks.ChunkDeferred):
            chunks.process_chunk(chunk.pk, now=at)
        chunk.refresh_from_db()
        assert (chunk.status, chunk.waiting_since) == (ChunkStatus.PENDING, idle_since)
        assert 1 <= chunk.waiting <= 3  # the texts that met the refusal (those not started yet did not)
    later = idle_since + SEND_GIVE_UP_AFTER
    frozen.move_to(later)
    with django_capture_on_commit_callbacks(execute=False):
        assert chunks.process_chunk(chunk.pk, now=later) == "gave-up"
    texts_only = Invitation.objects.filter(by_email=False)
    assert set(texts_only.values_list("status", "text_status")) == {(Status.FAILED, TextStatus.FAILED)}
    reason = texts_only.first().failure_reason
    assert reason.startswith("Gave up after the text service refused for 3 hours") and "credentials" in reason
    emailed = Invitation.objects.get(patient=both)
    assert (emailed.status, emailed.text_status) == (Status.SENT, TextStatus.FAILED)
    run.refresh_from_db()
    assert (run.status, run.sent, run.failed, run.emails_sent, run.texts_failed) == (BulkRunStatus.DONE, 1, 2, 1, 3)


def test_a_chunk_is_never_done_while_one_of_its_texts_is_pending(
    email_then_text_practice, quiet_twilio, monkeypatch, handed_on_chunks, frozen, django_capture_on_commit_callbacks
):
    """A safety net under send_texts: were a text ever lost between its lists (it should not be),
    the chunk is handed on instead of read as done, and the next attempt sends it."""
    patients = [textable_patient(email_then_text_practice) for _ in range(3)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    real_send_texts = chunks._send_texts

    def lose_one(outgoing, **kwargs):
        return real_send_texts(outgoing[1:], **kwargs)

    monkeypatch.setattr(chunks, "_send_texts", lose_one)
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "continued"
    run.refresh_from_db()
    assert run.is_running and run.chunks.get().status == ChunkStatus.PENDING
    monkeypatch.setattr(chunks, "_send_texts", real_send_texts)
    assert run_until_done(run, capture=django_capture_on_commit_callbacks) == ["done"]
    assert_each_texted_once_with_a_working_link(quiet_twilio, patients)


def test_texts_the_chunks_time_did_not_reach_go_on_the_next_attempt(
    email_then_text_practice, quiet_twilio, monkeypatch, handed_on_chunks, frozen, django_capture_on_commit_callbacks
):
    email_then_text_practice.bulk_channels = BulkChannels.BOTH
    email_then_text_practice.save()
    patients = [textable_patient(email_then_text_practice, email=f"p{i}@example.com") for i in range(3)]
    run = start_held_run(email_then_text_practice, django_capture_on_commit_callbacks)
    monkeypatch.setattr(chunks, "SEND_SECONDS", 0.0)  # no time for anything
    with django_capture_on_commit_callbacks(execute=True):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "continued"
    assert quiet_twilio.stats()["requests"] == 0
    assert not Invitation.objects.filter(text_claimed_at__isnull=False).exists()
    assert not Invitation.objects.filter(events__kind=EventKind.SEND_RETRY).exists()
    monkeypatch.setattr(chunks, "SEND_SECONDS", 60.0)
    assert run_until_done(run, capture=django_capture_on_commit_callbacks) == ["done"]
    assert_each_texted_once_with_a_working_link(quiet_twilio, patients)
    run.refresh_from_db()
    assert (run.sent, run.emails_sent, run.texts_sent) == (3, 3, 3)


# -- set-based: queries per chunk do not grow with its size ------------------------------------------


def _text_chunk_queries(size: int, capture, assert_max_queries) -> int:
    practice = bulk_texting_practice(BulkChannels.EMAIL_THEN_TEXT)
    [textable_patient(practice) for _ in range(size)]
    run = start_held_run(practice, capture)
    with CaptureQueriesContext(connection) as captured, assert_max_queries(48):
        assert chunks.process_chunk(run.chunks.get().pk, now=NOW) == "done"
    run.refresh_from_db()
    assert run.texts_sent == size
    return statements(captured.captured_queries)


def test_a_chunk_of_texts_runs_a_bounded_number_of_queries_whatever_its_size(
    quiet_twilio, frozen, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    small = _text_chunk_queries(10, django_capture_on_commit_callbacks, django_assert_max_num_queries)
    large = _text_chunk_queries(50, django_capture_on_commit_callbacks, django_assert_max_num_queries)
    # Set-based: only the marks repeat (every MARK_SENT_EVERY_MESSAGES texts or 2 seconds: the
    # texts, their events, the chunk's figures and a progress tick, in one transaction); +8: the
    # shared rate is read a few times a second, whatever the size.
    assert large <= small + 12 * (50 // chunks.MARK_SENT_EVERY_MESSAGES) + 8
