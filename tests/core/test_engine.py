"""The sending engine (`core.sending.engine`), each test run for both channels: emails through
anymail's real Postmark backend to the provider stand-in, texts through the real twilio client to
the Twilio stand-in. The behaviour decided once holds for both: what happens to a message still
waiting for its slot when sending stops, how often a temporary error is tried, and what the
report and the flushes say. What only one channel has (batches, Twilio's refusal codes, files) is in
test_email_transport.py and test_text_transport.py."""

import time

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from core.sending import engine
from core.sending.errors import ErrorKind, SendError
from tests.core.channels import EmailChannel, TextChannel

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sms_rate")]


@pytest.fixture(params=["email", "text"])
def channel(request):
    if request.param == "email":
        return EmailChannel(request.getfixturevalue("use_provider")("postmark"))
    twilio = request.getfixturevalue("twilio")
    twilio.configure(callbacks=False)  # nothing listens at a callback's address here
    return TextChannel(twilio)


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(engine, "RETRY_WAITS", (0.05, 0.05))


def keys(items) -> list:
    return sorted(item.key for item in items)


# -- sending ------------------------------------------------------------------------------------


def test_many_messages_go_through_several_connections_at_once(channel):
    channel.configure(latency=0.1)
    report, recorder = channel.send(channel.items(16), concurrency=8)
    assert (report.sent, report.failed, report.left, report.calls) == (16, 0, [], 16)
    assert recorder.sent == list(range(16)) == channel.accepted_keys()
    assert channel.taken() == 16 and channel.twice() == 0
    assert 4 <= channel.stats()["max_in_flight"] <= 8
    assert all(message_id for f in recorder.flushes for _, message_id in f.sent)  # the provider's id, recorded


def test_progress_is_flushed_as_it_goes(channel):
    channel.configure(latency=0.01)
    report, recorder = channel.send(channel.items(50), concurrency=2, flush_every_messages=10)
    assert len(recorder.flushes) >= 5 and recorder.sent == list(range(50)) and report.sent == 50


def test_the_report_and_the_flushes_say_the_same_for_both_channels(channel):
    """One report, one flush: a refused address is settled as failed with a SendError (its detail
    for staff), a sent message with the provider's id; the report counts both."""
    batch = channel.items(3)
    batch[1].to = channel.refused_address
    report, recorder = channel.send(batch, concurrency=1)
    assert isinstance(report, engine.Report) and all(isinstance(f, engine.Settled) for f in recorder.flushes)
    assert (report.sent, report.failed, report.left, report.service_error, report.deadline_reached) == (2, 1, [], None, False)
    assert recorder.sent == [0, 2]
    [(key, error)] = [(key, error) for f in recorder.flushes for key, error in f.failed]
    assert key == 1 and isinstance(error, SendError) and error.kind is ErrorKind.REFUSED and error.detail
    assert recorder.flushes[-1].waiting == 0


# -- throttling and the account's rate ------------------------------------------------------------


def test_a_429_slows_every_sender_of_the_account_and_the_message_is_retried_in_place(channel):
    """The provider allows 4 a second and we set no rate: each 429 pauses the account's senders
    and lowers its rate, and every message is sent in this same send, once."""
    channel.configure(rate_limit=4, burst=1)
    limiter = channel.limiter()
    report, _ = channel.send(channel.items(8), concurrency=4, limiter=limiter)
    stats = channel.stats()
    assert report.throttled > 0 and stats["throttled"] == report.throttled
    assert (report.sent, report.failed, report.left) == (8, 0, [])
    assert channel.taken() == 8 and channel.twice() == 0
    assert 0 < limiter.rate_in_force() < 4  # the account learned a rate below the provider's


def test_our_rate_keeps_the_provider_from_throttling(channel):
    channel.configure(rate_limit=10, burst=2)
    started = time.monotonic()
    report, _ = channel.send(channel.items(12), concurrency=4, limiter=channel.limiter(rate=8))
    assert report.sent == 12 and channel.stats()["throttled"] == 0
    assert time.monotonic() - started >= 11 / 8 - 0.05


def test_without_our_rate_the_same_send_is_throttled(channel):
    """The control for the test above: the stand-in's limit does bite."""
    channel.configure(rate_limit=10, burst=2)
    report, _ = channel.send(channel.items(12), concurrency=4)
    assert channel.stats()["throttled"] > 0 and report.sent == 12


# -- temporary errors: one schedule for both channels ---------------------------------------------


def test_a_temporary_error_is_tried_again_then_sent(channel, quick_retries):
    channel.configure(fail_next=2, fail_status=500)
    report, _ = channel.send(channel.items(1), concurrency=1)
    assert (report.sent, report.left) == (1, [])
    assert channel.stats()["failed_5xx"] == 2 and channel.taken() == 1


def test_temporary_errors_that_outlast_the_retries_are_handed_back_after_three_calls(channel, quick_retries):
    channel.configure(fail_next=100, fail_status=503)
    report, recorder = channel.send(channel.items(3), concurrency=3)
    assert (report.sent, report.failed) == (0, 0)
    assert keys(report.left) == [0, 1, 2]
    assert all(item.error.kind is ErrorKind.TEMPORARY and "503" in item.error.detail for item in report.left)
    assert [item.tries for item in report.left] == [len(engine.RETRY_WAITS) + 1] * 3 == [3] * 3
    assert channel.stats()["failed_5xx"] == 9  # three calls each, on either channel
    assert recorder.flushes[-1].waiting == 0  # handed back, not waiting here any more


def test_the_retries_wait_two_then_four_seconds(channel, monkeypatch):
    """The schedule itself (the tests above shorten it): a message's second call comes 2 s after
    its first, its third 4 s after its second, and no fourth follows."""
    assert engine.RETRY_WAITS == (2.0, 4.0)
    delays = []
    real_delay = engine._Run._delay

    def record(run, item, seconds):
        delays.append(seconds)
        real_delay(run, item, 0.01)

    monkeypatch.setattr(engine._Run, "_delay", record)
    channel.configure(fail_next=100, fail_status=503)
    report, _ = channel.send(channel.items(1), concurrency=1)
    assert delays == [2.0, 4.0] and len(report.left) == 1 and channel.stats()["failed_5xx"] == 3


# -- our account or configuration refused --------------------------------------------------------


def test_a_refused_account_stops_the_whole_send_and_fails_nobody(channel):
    channel.configure(auth_fail=True)
    report, recorder = channel.send(channel.items(20), concurrency=4)
    assert report.service_error is not None and report.service_error.kind is ErrorKind.SERVICE
    assert (report.sent, report.failed, recorder.failed) == (0, 0, {})
    assert keys(report.left) == list(range(20))
    assert channel.stats()["requests"] <= 4  # it stopped at once, not after 20 refusals


def test_messages_waiting_for_their_slot_are_not_sent_once_the_service_refused_us(channel):
    """At 2 a second four messages hold slots up to 1.5 s ahead when the first call is refused:
    the other three are handed back untried."""
    channel.configure(auth_fail=True)
    started = time.monotonic()
    report, _ = channel.send(channel.items(4), concurrency=4, limiter=channel.limiter(rate=2))
    assert report.service_error is not None and channel.stats()["requests"] == 1
    assert keys(report.left) == [0, 1, 2, 3]
    assert [item.error is None for item in sorted(report.left, key=lambda i: i.key)] == [False, True, True, True]
    assert time.monotonic() - started < 1.0  # nobody waited for the slots


def test_a_configuration_we_cannot_send_with_is_a_service_error_that_fails_nobody(channel, settings):
    if channel.name == "email":
        settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "POSTMARK_SERVER_TOKEN"}
    else:
        settings.TWILIO_AUTH_TOKEN = ""
    report, _ = channel.send(channel.items(3), concurrency=1)
    assert report.service_error.kind is ErrorKind.SERVICE
    assert (report.sent, report.failed, keys(report.left)) == (0, 0, [0, 1, 2])
    assert channel.stats()["requests"] == 0


# -- the deadline and the soft time limit: what is not handed over is handed back ------------------


def test_nothing_starts_after_the_deadline_and_the_rest_is_handed_back_untried(channel):
    channel.configure(latency=0.2)
    report, recorder = channel.send(channel.items(40), concurrency=2, deadline=0.5)
    assert report.deadline_reached
    assert report.sent == len(recorder.sent) and 2 <= report.sent <= 8
    assert report.sent + len(report.left) == 40
    assert all(item.error is None for item in report.left)  # never tried: no "delayed" event owed
    assert channel.taken() == report.sent


def test_a_slot_of_our_rate_beyond_the_deadline_is_not_taken_and_its_wait_is_reported(channel):
    # Slots at 0, .25, .5, .75 and 1 s; the deadline sits half a slot from the slots either side,
    # so a slow start or the rate store's clock cannot move one across it.
    report, _ = channel.send(channel.items(10), deadline=0.875, limiter=channel.limiter(rate=4))
    assert report.deadline_reached and report.sent == 4
    assert 0 < report.slot_wait <= 1.5


def test_the_wait_for_the_accounts_next_slot_is_reported(channel):
    limiter = channel.limiter()
    limiter.slow_down(30)  # the provider asked for 30 s
    report, _ = channel.send(channel.items(3), deadline=2.0, limiter=limiter)
    assert report.sent == 0 and report.deadline_reached and len(report.left) == 3
    assert 25 < report.slot_wait <= 30
    assert channel.stats()["requests"] == 0


def test_a_message_whose_slot_comes_after_the_deadline_is_handed_back_and_sent_once_later(channel):
    """The rate store gave slots 2 s apart beyond the deadline (as a clock moved across it would):
    the messages waiting for them are handed back when the deadline comes, untouched, and the
    next attempt sends each once."""
    limiter = channel.limiter(rate=0.5)
    booked = limiter.reserve_slot
    limiter.reserve_slot = lambda cost=1, max_wait=None: booked(cost, max_wait=60)
    items = channel.items(3)
    started = time.monotonic()
    report, recorder = channel.send(items, concurrency=3, deadline=1.0, limiter=limiter)
    assert time.monotonic() - started < 1.8  # it did not wait for the slots at 2 and 4 s
    assert report.deadline_reached and (report.sent, report.failed) == (1, 0) and recorder.sent == [0]
    assert keys(report.left) == [1, 2] and all(item.error is None and item.tries == 0 for item in report.left)
    assert channel.taken() == 1

    again, recorder = channel.send(report.left)
    assert (again.sent, again.left) == (2, []) and recorder.sent == [1, 2]
    assert channel.taken() == 3 and channel.twice() == 0


def test_the_soft_time_limit_hands_back_messages_waiting_for_their_slot_and_they_are_sent_once_later(channel, monkeypatch):
    """Celery's soft time limit while four messages wait for slots 0.5 s apart: none of those still
    waiting is handed over (the hard limit could kill the worker mid-call); all are handed back
    untouched and the next attempt sends each once."""
    real_wait = engine.concurrent.futures.wait

    def limit_at_once(*args, **kwargs):
        monkeypatch.setattr(engine.concurrent.futures, "wait", real_wait)
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(engine.concurrent.futures, "wait", limit_at_once)
    started = time.monotonic()
    report, recorder = channel.send(channel.items(4), concurrency=4, limiter=channel.limiter(rate=2))
    assert time.monotonic() - started < 0.5  # nobody waited for the later slots
    assert report.deadline_reached and (report.failed, recorder.failed) == (0, {})
    assert report.sent <= 1 and report.sent + len(report.left) == 4 and channel.taken() == report.sent
    assert all(item.error is None and item.tries == 0 for item in report.left)

    again, _ = channel.send(report.left)
    assert again.sent == len(report.left) and channel.taken() == 4 and channel.twice() == 0


def test_the_soft_time_limit_is_never_a_send_error(channel, monkeypatch):
    """It lands in the calling thread: calls in flight finish and are recorded, nothing is failed,
    the rest is handed back."""
    channel.configure(latency=0.1)
    real_wait = engine.concurrent.futures.wait
    calls = {"n": 0}

    def wait_then_limit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SoftTimeLimitExceeded()
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(engine.concurrent.futures, "wait", wait_then_limit)
    report, recorder = channel.send(channel.items(30), concurrency=3)
    assert report.deadline_reached and report.failed == 0 and recorder.failed == {}
    assert report.sent + len(report.left) == 30 and report.sent == channel.taken() > 0


def test_the_soft_time_limit_while_reserving_a_slot_loses_no_item(channel, monkeypatch):
    limiter = channel.limiter()
    real = limiter.reserve_slot
    calls = {"n": 0}

    def reserve_then_limit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise SoftTimeLimitExceeded()
        return real(*args, **kwargs)

    monkeypatch.setattr(limiter, "reserve_slot", reserve_then_limit)
    report, recorder = channel.send(channel.items(20), concurrency=2, limiter=limiter)
    assert report.deadline_reached and report.failed == 0
    assert sorted(recorder.sent + keys(report.left)) == list(range(20))


# -- when something else fails mid-send ---------------------------------------------------------


def test_a_failing_record_is_tried_again_and_what_went_out_is_recorded_before_the_error(channel):
    channel.configure(latency=0.05)
    recorded = []

    def flaky_flush(settled):
        if not recorded:
            recorded.append(None)
            raise RuntimeError("the database went away")
        recorded.extend(key for key, _ in settled.sent)

    with pytest.raises(RuntimeError, match="went away"):
        engine.send_many(
            channel.items(8), via=channel.transport(), deadline=time.monotonic() + 30, flush=flaky_flush,
            limiter=channel.limiter(), concurrency=4, flush_every_messages=1,
        )
    # Every message the provider took is recorded (the claims would otherwise lapse and resend).
    assert sorted(recorded[1:]) == channel.accepted_keys()


def test_waiting_for_a_slow_answer_does_not_spin(channel, monkeypatch):
    channel.configure(latency=3.0)
    real_wait = engine.concurrent.futures.wait
    calls = {"n": 0}

    def counting_wait(*args, **kwargs):
        calls["n"] += 1
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(engine.concurrent.futures, "wait", counting_wait)
    report, _ = channel.send(channel.items(1))
    assert report.sent == 1
    assert calls["n"] <= 12  # about twice a second, not thousands of empty turns


# -- one message ----------------------------------------------------------------------------------


def test_one_message_goes_through_the_shared_rate_and_is_classified(channel):
    limiter, via = channel.limiter(), channel.single()
    first, second, third = (channel.one(item) for item in channel.items(3))
    sent = engine.send_one(first, via=via, limiter=limiter)
    assert sent.sent and sent.message_id
    channel.configure(rate_limit=1, burst=1)
    engine.send_one(second, via=via, limiter=limiter)
    throttled = engine.send_one(third, via=via, limiter=limiter)
    assert throttled.error.kind is ErrorKind.THROTTLED
    assert limiter.paused_for() > 0.5  # every sender of the account now waits
    refused = channel.items(1, start=9)[0]
    refused.to = channel.refused_address
    outcome = engine.send_one(channel.one(refused), via=via, limiter=limiter, max_wait=5)
    assert outcome.error.kind is ErrorKind.REFUSED


def test_one_message_waits_no_longer_than_it_may(channel):
    limiter = channel.limiter()
    limiter.slow_down(30)
    started = time.monotonic()
    outcome = engine.send_one(channel.one(channel.items(1)[0]), via=channel.single(), limiter=limiter, max_wait=1)
    assert outcome.error.kind is ErrorKind.THROTTLED and 25 < outcome.error.retry_after <= 30  # when the slot is
    assert time.monotonic() - started < 0.5 and channel.stats()["requests"] == 0


def test_one_message_with_a_configuration_we_cannot_send_with_is_a_service_error(channel, settings):
    if channel.name == "email":
        settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "POSTMARK_SERVER_TOKEN"}
    else:
        settings.TWILIO_AUTH_TOKEN = ""
    outcome = engine.send_one(channel.one(channel.items(1)[0]), via=channel.single(), limiter=channel.limiter())
    assert outcome.error.kind is ErrorKind.SERVICE and channel.stats()["requests"] == 0


def test_the_soft_time_limit_is_never_a_single_sends_error(channel, monkeypatch):
    via = channel.single()

    def limit(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(via, "send", limit)
    with pytest.raises(SoftTimeLimitExceeded):
        engine.send_one(channel.one(channel.items(1)[0]), via=via, limiter=channel.limiter())
