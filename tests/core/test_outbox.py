"""Sending many messages at once through anymail's real backends to the local provider stand-in:
concurrency, batches with per-recipient fields, throttling retried in place, temporary errors,
a refused account, refused addresses inside a batch, and the deadline."""

import time
import warnings

import pytest
from django.core.mail import EmailMultiAlternatives

from core.sending import outbox
from core.sending.transports import email_providers as providers
from core.sending.errors import ErrorKind
from core.sending.ratelimit import make as rate_limiter

pytestmark = pytest.mark.django_db

FROM = "Maple Dental <portal@mg.portal.example>"


class Composer:
    """Each item's message carries its own secret, so a test can see who got whose."""

    def message(self, item):
        message = EmailMultiAlternatives("Your invitation", f"Hi {item.payload}, link /r/{item.key}", FROM, [item.to])
        message.attach_alternative(f"<p>Hi {item.payload}, <a href='/r/{item.key}'>link</a></p>", "text/html")
        message.metadata = {"invitation": str(item.key)}
        return message

    def batch(self, items, merge):
        message = EmailMultiAlternatives(
            "Your invitation", f"Hi {merge.field('name')}, link /r/{merge.field('key')}", FROM, [i.to for i in items]
        )
        message.attach_alternative(f"<p>Hi {merge.field('name')}</p>", "text/html")
        message.merge_data = {i.to: {merge.key("name"): i.payload, merge.key("key"): str(i.key)} for i in items}
        message.merge_metadata = {i.to: {"invitation": str(i.key)} for i in items}
        return message


def items(n: int, *, domain: str = "example.com", start: int = 0) -> list[outbox.Item]:
    return [outbox.Item(key=start + i, to=f"p{start + i}@{domain}", payload=f"Pat{start + i}") for i in range(n)]


class Recorder:
    def __init__(self):
        self.flushes: list[outbox.Flush] = []

    def __call__(self, flush):
        self.flushes.append(flush)

    @property
    def sent(self):
        return sorted(key for f in self.flushes for key, _ in f.sent)

    @property
    def failed(self):
        return {key: why for f in self.flushes for key, why in f.failed}


def send(batch, *, deadline=30.0, concurrency=8, limiter=None, **kwargs):
    recorder = Recorder()
    sender = outbox.Outbox(
        composer=Composer(), concurrency=concurrency, limiter=limiter or rate_limiter("email", rate=0), **kwargs
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = sender.send(batch, deadline=time.monotonic() + deadline, flush=recorder)
    return report, recorder


def test_one_message_per_call_goes_through_many_connections_at_once(use_provider):
    standin = use_provider("postmark")
    standin.configure(latency=0.05)
    report, recorder = send(items(40), concurrency=8)
    assert (report.sent, report.failed, report.left, report.calls) == (40, 0, [], 40)
    assert recorder.sent == list(range(40))
    stats = standin.stats()
    assert stats["messages"] == 40 and stats["recipients_emailed_twice"] == 0
    assert 4 <= stats["max_in_flight"] <= 8
    # Each recipient got their own message and link, with the provider's message id recorded.
    for message in standin.accepted():
        key = int(message["metadata"]["invitation"])
        assert message["to"] == f"p{key}@example.com" and f"/r/{key}" in message["text"]
    assert all(message_id for f in recorder.flushes for _, message_id in f.sent)


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_a_batch_provider_gets_one_call_with_each_recipients_own_fields(use_provider, settings, provider):
    settings.PORTAL_EMAIL_BATCH_SIZE = 25
    standin = use_provider(provider)
    batch = items(60)
    report, recorder = send(batch)
    assert (report.sent, report.calls) == (60, 3)
    assert standin.stats()["requests"] == 3
    for message in standin.accepted():
        key = int(message["metadata"]["invitation"])
        assert message["to"] == f"p{key}@example.com"
        assert message["text"] == f"Hi Pat{key}, link /r/{key}"


def test_a_batch_never_carries_one_address_twice(use_provider):
    """Family members share an address: each gets their own email, in separate calls."""
    standin = use_provider("mailgun")
    family = [outbox.Item(key=k, to="family@example.com", payload=name) for k, name in enumerate(["Ann", "Bo", "Cy"])]
    report, _ = send(family + items(5, start=10))
    assert report.sent == 8 and report.calls == 3
    texts = sorted(m["text"] for m in standin.accepted() if m["to"] == "family@example.com")
    assert texts == ["Hi Ann, link /r/0", "Hi Bo, link /r/1", "Hi Cy, link /r/2"]


def test_a_batch_the_provider_refuses_is_split_so_only_the_bad_address_fails(use_provider):
    standin = use_provider("mailgun")  # Mailgun refuses a whole call for one bad address
    batch = items(6)
    batch[3].to = "invalid-typo@example.com"
    report, recorder = send(batch)
    assert (report.sent, report.failed) == (5, 1)
    assert list(recorder.failed) == [3] and "HTTP 400" in recorder.failed[3]
    assert standin.stats()["recipients_emailed_twice"] == 0


def test_throttled_messages_are_retried_in_place_until_all_are_sent(use_provider):
    """The provider allows 20 calls a second and we did not configure a rate: every 429 pauses
    all senders for its Retry-After, and the message is tried again in this same send."""
    standin = use_provider("postmark")
    standin.configure(rate_limit=20, burst=5)
    report, recorder = send(items(30), concurrency=10)
    stats = standin.stats()
    assert report.throttled > 0 and stats["throttled"] == report.throttled
    assert (report.sent, report.failed, report.left) == (30, 0, [])
    assert stats["messages"] == 30 and stats["recipients_emailed_twice"] == 0


def test_our_rate_keeps_the_provider_from_throttling(use_provider):
    standin = use_provider("postmark")
    standin.configure(rate_limit=20, burst=20)
    started = time.monotonic()
    report, _ = send(items(30), concurrency=10, limiter=rate_limiter("email", rate=20))
    assert report.sent == 30 and standin.stats()["throttled"] == 0
    assert time.monotonic() - started >= 29 / 20 - 0.05


def test_a_temporary_error_is_tried_again_after_a_short_wait(use_provider):
    standin = use_provider("postmark")
    standin.configure(fail_next=3)
    report, _ = send(items(5), concurrency=1)
    assert (report.sent, report.failed, report.left) == (5, 0, [])
    assert standin.stats()["messages"] == 5


def test_errors_that_outlast_the_retries_are_handed_back_waiting(use_provider, monkeypatch):
    standin = use_provider("postmark")
    standin.configure(fail_next=100)
    monkeypatch.setattr(outbox, "MAX_TRIES", 2)
    report, recorder = send(items(3), concurrency=3)
    assert (report.sent, report.failed) == (0, 0)
    assert sorted(item.key for item in report.left) == [0, 1, 2]
    assert all(item.error.kind is ErrorKind.TEMPORARY for item in report.left)
    assert recorder.flushes[-1].waiting == 0  # they are handed back, not waiting here any more


def test_a_refused_account_stops_the_whole_send_and_fails_nobody(use_provider):
    standin = use_provider("postmark")
    standin.configure(auth_fail=True)
    report, recorder = send(items(50), concurrency=4)
    assert report.service_error is not None and report.service_error.kind is ErrorKind.SERVICE
    assert (report.sent, report.failed, recorder.failed) == (0, 0, {})
    assert sorted(item.key for item in report.left) == list(range(50))
    assert standin.stats()["requests"] <= 4  # it stopped at once, not after 50 refusals


def test_nothing_starts_after_the_deadline_and_the_rest_is_handed_back_untried(use_provider):
    standin = use_provider("postmark")
    standin.configure(latency=0.2)
    report, recorder = send(items(40), concurrency=2, deadline=0.5)
    assert report.deadline_reached
    assert report.sent == len(recorder.sent) and 2 <= report.sent <= 8
    assert report.sent + len(report.left) == 40
    assert all(item.error is None for item in report.left)  # never tried: no "delayed" event owed
    assert standin.stats()["messages"] == report.sent


def test_a_slot_of_our_rate_beyond_the_deadline_is_not_taken(use_provider):
    use_provider("postmark")
    report, _ = send(items(10), concurrency=4, deadline=1.0, limiter=rate_limiter("email", rate=4))
    assert report.deadline_reached and report.sent == 4  # slots at 0, .25, .5, .75 s


def test_the_soft_time_limit_is_never_a_send_error(use_provider, monkeypatch):
    """Celery's SoftTimeLimitExceeded lands in the calling thread: sends in flight finish and are
    recorded, nothing is failed, the rest is handed back."""
    from celery.exceptions import SoftTimeLimitExceeded

    standin = use_provider("postmark")
    standin.configure(latency=0.1)
    real_wait = outbox.concurrent.futures.wait
    calls = {"n": 0}

    def wait_then_limit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SoftTimeLimitExceeded()
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(outbox.concurrent.futures, "wait", wait_then_limit)
    report, recorder = send(items(30), concurrency=3)
    assert report.deadline_reached and report.failed == 0 and recorder.failed == {}
    assert report.sent + len(report.left) == 30 and report.sent == standin.stats()["messages"] > 0


def test_progress_is_flushed_as_it_goes(use_provider):
    standin = use_provider("postmark")
    standin.configure(latency=0.01)
    _, recorder = send(items(50), concurrency=2, flush_every_messages=10)
    assert len(recorder.flushes) >= 5 and recorder.sent == list(range(50))


def test_one_message_goes_through_the_shared_rate_and_is_classified(use_provider):
    standin = use_provider("postmark")
    limiter = rate_limiter("email", rate=0)
    sent = outbox.send_one(Composer().message(items(1)[0]), limiter=limiter)
    assert sent.sent and sent.message_id
    standin.configure(rate_limit=1, burst=1)
    outbox.send_one(Composer().message(items(1)[0]), limiter=limiter)
    throttled = outbox.send_one(Composer().message(items(1)[0]), limiter=limiter)
    assert throttled.error.kind is ErrorKind.THROTTLED and throttled.error.retry_after == 1.0
    assert limiter.paused_for() > 0.5  # every sender of the account now waits
    refused = outbox.send_one(Composer().message(outbox.Item(key=9, to="invalid@example.com")), limiter=limiter, max_wait=5)
    assert refused.error.kind is ErrorKind.REFUSED


def test_one_message_waits_no_longer_than_it_may(use_provider):
    use_provider("postmark")
    limiter = rate_limiter("email", rate=0)
    limiter.slow_down(30)
    outcome = outbox.send_one(Composer().message(items(1)[0]), limiter=limiter, max_wait=1)
    assert outcome.error.kind is ErrorKind.THROTTLED and outcome.error.retry_after == 1


def test_amazon_ses_messages_go_without_the_click_tracking_option_it_refuses(use_provider):
    standin = use_provider("amazon_ses")
    assert providers.current().accepts_track_clicks is False
    report, _ = send(items(3))
    assert report.sent == 3 and standin.stats()["messages"] == 3


# -- when something else fails mid-send ---------------------------------------------------------


def test_a_failing_record_is_tried_again_and_what_went_out_is_recorded_before_the_error(use_provider):
    standin = use_provider("postmark")
    standin.configure(latency=0.05)
    attempts = {"n": 0}
    recorder = Recorder()

    def flaky_flush(flush):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("the database went away")
        recorder(flush)

    sender = outbox.Outbox(composer=Composer(), concurrency=4, limiter=rate_limiter("email", rate=0), flush_every_messages=1)
    with pytest.raises(RuntimeError, match="went away"):
        sender.send(items(8), deadline=time.monotonic() + 30, flush=flaky_flush)
    # Every email the provider took is recorded (the claims would otherwise lapse and resend).
    assert sorted(key for f in recorder.flushes for key, _ in f.sent) == sorted(
        int(m["metadata"]["invitation"]) for m in standin.accepted()
    )


def test_the_soft_time_limit_while_reserving_a_slot_loses_no_item(use_provider, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    use_provider("postmark")
    limiter = rate_limiter("email", rate=0)
    real = limiter.reserve_slot
    calls = {"n": 0}

    def reserve_then_limit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise SoftTimeLimitExceeded()
        return real(*args, **kwargs)

    monkeypatch.setattr(limiter, "reserve_slot", reserve_then_limit)
    report, recorder = send(items(20), concurrency=2, limiter=limiter)
    assert report.deadline_reached and report.failed == 0
    assert sorted(recorder.sent + [i.key for i in report.left]) == list(range(20))


def test_waiting_for_a_slow_answer_does_not_spin(use_provider, monkeypatch):
    standin = use_provider("postmark")
    standin.configure(latency=3.0)
    real_wait = outbox.concurrent.futures.wait
    calls = {"n": 0}

    def counting_wait(*args, **kwargs):
        calls["n"] += 1
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(outbox.concurrent.futures, "wait", counting_wait)
    report, _ = send(items(1))
    assert report.sent == 1
    assert calls["n"] <= 12  # about twice a second, not thousands of empty turns


def test_the_wait_for_the_accounts_next_slot_is_reported(use_provider):
    use_provider("postmark")
    limiter = rate_limiter("email", rate=0)
    limiter.slow_down(30)  # the provider asked for 30 s
    report, _ = send(items(3), deadline=2.0, limiter=limiter)
    assert report.sent == 0 and report.deadline_reached
    assert 25 < report.slot_wait <= 30


def test_the_soft_time_limit_is_never_a_single_sends_error(use_provider, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    use_provider("postmark")

    def limit(self, *args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(EmailMultiAlternatives, "send", limit)
    with pytest.raises(SoftTimeLimitExceeded):
        outbox.send_one(Composer().message(items(1)[0]), limiter=rate_limiter("email", rate=0))


def test_a_batch_at_a_low_account_rate_books_at_most_ten_seconds_of_it(use_provider, settings):
    standin = use_provider("mailgun")
    report, _ = send(items(30), limiter=rate_limiter("email", rate=1), deadline=3)
    assert standin.stats()["requests"] >= 1
    assert all(len(m["to"]) for m in standin.accepted())
    assert report.sent <= 12  # 10 in the first batch, a slot a second after


def test_sendgrid_with_its_own_merge_field_format_still_fills_each_link(use_provider, settings):
    standin = use_provider("sendgrid")
    settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_MERGE_FIELD_FORMAT": "-{}-"}
    report, _ = send(items(3))
    assert report.sent == 3 and standin.stats()["requests"] == 1
    assert sorted(m["text"] for m in standin.accepted()) == [f"Hi Pat{k}, link /r/{k}" for k in range(3)]
