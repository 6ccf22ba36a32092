"""What only the email channel has (`core.sending.transports.email`), through anymail's real
backends to the provider stand-in: the providers' batch calls with each recipient's own fields, a
batch never carrying an address twice, a refused batch split so only the bad address fails, the
batch size held to ten seconds of a low account rate, and the click-tracking option. What every
channel shares is in test_engine.py."""

import pytest

from core.sending import ratelimit
from core.sending.ratelimit import make as rate_limiter
from core.sending.transports import Item, email_providers
from core.sending.transports import email as email_transport
from tests.core.channels import Composer, emails, no_rate, send_many

pytestmark = pytest.mark.django_db


def send_emails(batch, **kwargs):
    kwargs.setdefault("limiter", no_rate("email"))
    return send_many(batch, via=email_transport.for_many(Composer()), concurrency=8, **kwargs)


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_a_batch_provider_gets_one_call_with_each_recipients_own_fields(use_provider, settings, provider):
    settings.PORTAL_EMAIL_BATCH_SIZE = 25
    standin = use_provider(provider)
    report, recorder = send_emails(emails(60))
    assert (report.sent, report.calls) == (60, 3) and recorder.sent == list(range(60))
    assert standin.stats()["requests"] == 3
    for message in standin.accepted():
        key = int(message["metadata"]["invitation"])
        assert message["to"] == f"p{key}@example.com"
        assert message["text"] == f"Hi Pat{key}, link /r/{key}"


def test_a_batch_never_carries_one_address_twice(use_provider):
    """Family members share an address: each gets their own email, in separate calls."""
    standin = use_provider("mailgun")
    family = [Item(key=k, to="family@example.com", payload=name) for k, name in enumerate(["Ann", "Bo", "Cy"])]
    report, _ = send_emails(family + emails(5, start=10))
    assert report.sent == 8 and report.calls == 3
    texts = sorted(m["text"] for m in standin.accepted() if m["to"] == "family@example.com")
    assert texts == ["Hi Ann, link /r/0", "Hi Bo, link /r/1", "Hi Cy, link /r/2"]


def test_a_batch_the_provider_refuses_is_split_so_only_the_bad_address_fails(use_provider):
    standin = use_provider("mailgun")  # Mailgun refuses a whole call for one bad address
    batch = emails(6)
    batch[3].to = "invalid-typo@example.com"
    report, recorder = send_emails(batch)
    assert (report.sent, report.failed) == (5, 1)
    assert list(recorder.failed) == [3] and "HTTP 400" in recorder.failed[3].detail
    assert standin.stats()["recipients_emailed_twice"] == 0


def test_a_message_that_cannot_be_built_is_refused_not_retried(use_provider):
    standin = use_provider("postmark")

    class Broken(Composer):
        def message(self, item):
            if item.key == 1:
                raise ValueError("the template names a snippet that does not exist")
            return super().message(item)

    report, recorder = send_many(emails(3), via=email_transport.for_many(Broken()), limiter=no_rate("email"))
    assert (report.sent, report.failed, report.left) == (2, 1, [])
    assert "snippet that does not exist" in recorder.failed[1].detail
    assert standin.stats()["messages"] == 2


def test_a_batch_at_a_low_account_rate_books_at_most_ten_seconds_of_it(use_provider):
    standin = use_provider("mailgun")
    report, _ = send_emails(emails(30), limiter=rate_limiter("email", rate=1), deadline=3)
    assert standin.stats()["requests"] >= 1
    assert report.sent <= 12  # 10 in the first batch, a slot a second after


def test_sendgrid_with_its_own_merge_field_format_still_fills_each_link(use_provider, settings):
    standin = use_provider("sendgrid")
    settings.ANYMAIL = {**settings.ANYMAIL, "SENDGRID_MERGE_FIELD_FORMAT": "-{}-"}
    report, _ = send_emails(emails(3))
    assert report.sent == 3 and standin.stats()["requests"] == 1
    assert sorted(m["text"] for m in standin.accepted()) == [f"Hi Pat{k}, link /r/{k}" for k in range(3)]


def test_amazon_ses_messages_go_without_the_click_tracking_option_it_refuses(use_provider):
    standin = use_provider("amazon_ses")
    assert email_providers.current().accepts_track_clicks is False
    report, _ = send_emails(emails(3))
    assert report.sent == 3 and standin.stats()["messages"] == 3


def test_click_tracking_is_turned_off_where_the_provider_has_it(use_provider):
    use_provider("postmark")
    message = Composer().message(emails(1)[0])
    assert email_transport.prepare(message).track_clicks is False


# -- a provider that counts a strict one-second window ------------------------------------------------


def test_at_exactly_a_strict_windows_rate_a_jitter_429_is_waited_out_and_we_keep_near_our_rate(use_provider):
    """The provider allows 20 calls in each whole second and so do we. The calls' jitter (its answer
    takes 10 to 50 ms) moves one now and then into the next second, which refuses it: we wait as it
    asks, send it again, and keep to 95 % of our rate, not 70 % (the lesson of a real limit)."""
    standin = use_provider("postmark")
    standin.configure(rate_limit=20, strict_window=True, latency=0.01, jitter=0.04)
    limiter = rate_limiter("email", rate=20)
    report, recorder = send_emails(emails(100), limiter=limiter)
    stats = standin.stats()
    assert report.sent == 100 and not report.left and recorder.sent == list(range(100))
    assert stats["recipients_emailed_twice"] == 0
    assert stats["throttled"] <= 5  # at most 5 % of the calls
    assert limiter.rate_in_force() >= 20 * ratelimit.JITTER_MARGIN


def test_a_strict_window_below_our_rate_is_learned_within_a_second_or_two(use_provider):
    """The provider allows 10 calls a second; we set 20: its 429s come second after second, so the
    account learns a lower rate at once and every email still goes, once."""
    standin = use_provider("postmark")
    standin.configure(rate_limit=10, strict_window=True, latency=0.01)
    limiter = rate_limiter("email", rate=20)
    report, recorder = send_emails(emails(60), limiter=limiter)
    stats = standin.stats()
    assert report.sent == 60 and recorder.sent == list(range(60)) and stats["recipients_emailed_twice"] == 0
    assert limiter.rate_in_force() < 20 * ratelimit.JITTER_MARGIN * 0.8  # a real lesson, not the margin
    assert stats["throttled"] <= 15
