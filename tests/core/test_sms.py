"""Sending texts through the real twilio client to the local Twilio stand-in (tests/twilio_standin/):
sent and recorded with Twilio's sid, refusals with the code the app acts on, 429s that slow every
sender of the account and are retried in place, temporary errors retried then left, a refused
account that stops the send, the deadline, one text, the account's rate across concurrent senders;
the file backend. What Twilio's errors mean, the webhooks and segments have their own modules
(test_sms_errors.py, test_sms_webhooks.py, test_sms_segments.py); the fixtures are in conftest.py."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.sending import sms
from core.sending.errors import CANNOT_ROUTE, INVALID_NUMBER, NOT_MOBILE, OPTED_OUT, UNKNOWN_OUTCOME, ErrorKind
from core.sending.ratelimit import make as rate_limiter
from core.sending.sms import Text
from tests import twilio_standin
from tests.conftest import redis_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sms_rate")]

ROOT = Path(__file__).resolve().parents[2]
BODY = "Maple Dental invites you to its patient portal: https://portal.example.test/r/AbC123"


def texts(n: int, *, start: int = 0, callback: str = "") -> list[Text]:
    return [Text(key=start + i, to=f"+1617555{start + i:04d}", body=BODY, status_callback=callback) for i in range(n)]


def no_rate():
    return rate_limiter("sms", rate=0)


class Recorder:
    def __init__(self):
        self.flushes: list[sms.Settled] = []

    def __call__(self, settled):
        self.flushes.append(settled)

    @property
    def sent(self):
        return sorted(key for f in self.flushes for key, _ in f.sent)


def send(batch, *, deadline=30.0, concurrency=4, limiter=None, **kwargs):
    recorder = Recorder()
    report = sms.send_texts(
        batch, deadline=time.monotonic() + deadline, flush=recorder, limiter=limiter or no_rate(),
        concurrency=concurrency, **kwargs,
    )
    return report, recorder


# -- sending ------------------------------------------------------------------------------------


def test_a_text_is_sent_and_recorded_with_twilios_sid(twilio):
    twilio.configure(callbacks=False)  # nothing listens at the callback's address
    report, recorder = send(texts(1, callback="https://portal.example.test/texts/status/"))
    [(key, sid)] = report.sent
    assert key == 0 and sid.startswith("SM") and len(sid) == 34
    assert recorder.flushes[-1].sent == [(0, sid)]
    [accepted] = twilio.accepted()
    assert (accepted["sid"], accepted["to"], accepted["from"], accepted["body"]) == (sid, "+16175550000", twilio_standin.FROM_NUMBER, BODY)
    assert accepted["status_callback"] == "https://portal.example.test/texts/status/"
    assert accepted["num_segments"] == "1"
    assert (report.refused, report.left, report.service_error) == ([], [], None)


def test_through_a_messaging_service_the_service_picks_the_sender(twilio, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = twilio_standin.MESSAGING_SERVICE_SID
    settings.TWILIO_FROM_NUMBER = ""
    report, _ = send(texts(2))
    assert len(report.sent) == 2
    assert {m["messaging_service_sid"] for m in twilio.accepted()} == {twilio_standin.MESSAGING_SERVICE_SID}


def test_many_texts_go_through_several_connections_at_once(twilio):
    twilio.configure(latency=0.1)
    report, recorder = send(texts(16), concurrency=8)
    assert sorted(key for key, _ in report.sent) == list(range(16)) == recorder.sent
    stats = twilio.stats()
    assert stats["accepted"] == 16 and stats["recipients_texted_twice"] == 0
    assert stats["max_in_flight"] >= 4


def test_without_a_provider_texts_are_written_as_readable_files(settings, tmp_path):
    settings.SMS_PROVIDER = ""
    settings.VAR_DIR = tmp_path
    settings.TWILIO_FROM_NUMBER = ""
    report, _ = send([Text(key=7, to="+16175550123", body="Hello from Maple Dental")])
    [(key, sid)] = report.sent
    assert key == 7 and sid.startswith("file-")
    [written] = list((tmp_path / "texts").glob("*.txt"))
    content = written.read_text(encoding="utf-8")
    assert sid in written.name
    assert "To: +16175550123\n" in content and "From: Practice Portal\n" in content and "\nDate: 20" in content
    assert "Segments: 1 (GSM-7, 23 characters)" in content
    assert content.endswith("\n\nHello from Maple Dental\n")
    assert not list((tmp_path / "texts").glob("*.part"))


def test_one_text_through_the_file_backend(settings, tmp_path):
    settings.SMS_PROVIDER = ""
    settings.VAR_DIR = tmp_path
    outcome = sms.send_text(Text(key=1, to="+16175550123", body="Hi"), limiter=no_rate())
    assert outcome.sent and outcome.sid.startswith("file-")
    assert len(list((tmp_path / "texts").glob("*.txt"))) == 1


# -- refusals, throttling, failures ---------------------------------------------------------------


def test_numbers_twilio_refuses_are_refused_with_the_code_the_app_acts_on(twilio):
    twilio.configure(unsubscribed=["+16175550150"])
    batch = [
        Text(key="invalid", to=twilio_standin.INVALID_NUMBER, body=BODY),
        Text(key="landline", to=twilio_standin.NOT_MOBILE, body=BODY),
        Text(key="stopped", to=twilio_standin.UNSUBSCRIBED, body=BODY),
        Text(key="stopped-here", to="+16175550150", body=BODY),
        Text(key="unreachable", to=twilio_standin.CANNOT_ROUTE, body=BODY),
        Text(key="abroad", to=twilio_standin.REGION_NOT_ENABLED, body=BODY),
        Text(key="fine", to="+16175550123", body=BODY),
    ]
    report, recorder = send(batch)
    refused = {key: error for key, error in report.refused}
    assert {key: error.code for key, error in refused.items()} == {
        "invalid": INVALID_NUMBER, "landline": NOT_MOBILE, "stopped": OPTED_OUT, "stopped-here": OPTED_OUT,
        "unreachable": CANNOT_ROUTE, "abroad": CANNOT_ROUTE,
    }
    assert all(error.kind is ErrorKind.REFUSED for error in refused.values())
    assert "21610" in refused["stopped"].detail and "STOP" in refused["stopped"].detail
    # Staff read the reason; the number (and the text) never appear in it.
    assert not any("+1" in error.detail or "Maple" in error.detail for error in refused.values())
    assert [key for key, _ in report.sent] == ["fine"]
    assert {key for f in recorder.flushes for key, _ in f.refused} == set(refused)


def test_a_429_slows_every_sender_of_the_account_and_the_text_is_retried_in_place(twilio):
    """Twilio allows 4 texts a second and we set no rate: each 429 pauses the account's
    senders and lowers its rate, and every text is sent in this same call, once."""
    twilio.configure(rate_limit=4, burst=1)
    limiter = no_rate()
    report, _ = send(texts(8), concurrency=4, limiter=limiter)
    stats = twilio.stats()
    assert report.throttled > 0 and stats["throttled"] == report.throttled
    assert sorted(key for key, _ in report.sent) == list(range(8))
    assert (report.refused, report.left) == ([], [])
    assert stats["accepted"] == 8 and stats["recipients_texted_twice"] == 0
    assert 0 < limiter.rate_in_force() < 4  # the account learned a rate below Twilio's


def test_temporary_errors_are_tried_again_then_sent(twilio, monkeypatch):
    monkeypatch.setattr(sms, "RETRY_WAITS", (0.05, 0.05))
    twilio.configure(fail_next=2, fail_status=500)
    report, _ = send(texts(1), concurrency=1)
    assert [key for key, _ in report.sent] == [0] and report.left == []
    assert twilio.stats()["failed_5xx"] == 2 and twilio.stats()["accepted"] == 1


def test_a_call_whose_answer_never_came_is_not_sent_again_the_text_goes_at_most_once(twilio, settings, monkeypatch):
    monkeypatch.setattr(sms, "RETRY_WAITS", (0.05, 0.05))
    settings.TWILIO_TIMEOUT = 0.3
    twilio.configure(latency=1.0)  # Twilio takes the text, its answer comes after our timeout
    report, _ = send(texts(1), concurrency=1)
    assert report.sent == [] and report.left == []
    [(key, error)] = report.refused
    assert (key, error.code) == (0, UNKNOWN_OUTCOME) and "may or may not have been sent" in error.detail
    time.sleep(1.0)
    assert twilio.stats()["requests"] == 1  # asked once: never a second text


def test_temporary_errors_that_outlast_the_retries_leave_the_text_with_the_error(twilio, monkeypatch):
    monkeypatch.setattr(sms, "RETRY_WAITS", (0.05, 0.05))
    twilio.configure(fail_next=100, fail_status=503)
    report, recorder = send(texts(3), concurrency=3)
    assert (report.sent, report.refused) == ([], [])
    assert sorted(key for key, _ in report.left) == [0, 1, 2]
    assert all(error.kind is ErrorKind.TEMPORARY and "503" in error.detail for _, error in report.left)
    assert twilio.stats()["failed_5xx"] == 9  # three tries each
    assert recorder.flushes[-1].waiting == 0  # handed back, not waiting here any more


def test_bad_credentials_are_a_service_error_that_stops_the_send_and_refuses_nobody(twilio, settings):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    report, recorder = send(texts(20), concurrency=4)
    assert report.service_error.kind is ErrorKind.SERVICE
    assert "20003" in report.service_error.detail and "TWILIO_AUTH_TOKEN" in report.service_error.detail
    assert (report.sent, report.refused) == ([], [])
    assert sorted(key for key, _ in report.left) == list(range(20))
    assert twilio.stats()["requests"] <= 4  # stopped at once, not after 20 refusals


def test_a_sender_that_is_not_ours_is_a_service_error(twilio, settings):
    settings.TWILIO_FROM_NUMBER = "+16175559999"
    report, _ = send(texts(3), concurrency=1)
    assert report.service_error.kind is ErrorKind.SERVICE and "21606" in report.service_error.detail
    assert twilio.stats()["requests"] == 1 and len(report.left) == 3


def test_texts_waiting_for_their_slot_are_not_sent_once_the_service_refused_us(twilio, settings):
    """At 2 texts a second four texts hold slots up to 1.5 s ahead when the first call is
    refused: the other three stay untried."""
    twilio.configure(auth_fail=True)
    report, _ = send(texts(4), concurrency=4, limiter=rate_limiter("sms", rate=2))
    assert report.service_error is not None
    assert twilio.stats()["requests"] == 1
    assert sorted(key for key, _ in report.left) == [0, 1, 2, 3]


def test_nothing_starts_after_the_deadline_and_the_rest_is_left_untried(twilio):
    twilio.configure(latency=0.2)
    report, recorder = send(texts(40), concurrency=2, deadline=0.5)
    assert report.deadline_reached
    assert 2 <= len(report.sent) <= 8 and len(report.sent) + len(report.left) == 40
    assert all(error is None for _, error in report.left)  # never tried
    assert twilio.stats()["accepted"] == len(report.sent) == len(recorder.sent)


def test_a_slot_of_our_rate_beyond_the_deadline_is_not_taken_and_its_wait_is_reported(twilio):
    # Slots at 0, .25, .5, .75 and 1 s; the deadline sits half a slot from either side, so a slow
    # start or the rate store's clock cannot move a slot across it.
    report, _ = send(texts(10), deadline=0.875, limiter=rate_limiter("sms", rate=4))
    assert report.deadline_reached and len(report.sent) == 4
    assert 0 < report.slot_wait <= 1.5


def test_a_misconfiguration_names_the_missing_setting(twilio, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    with pytest.raises(ImproperlyConfigured, match="TWILIO_AUTH_TOKEN"):
        sms.transport()
    report = sms.send_texts(texts(2), deadline=time.monotonic() + 5, limiter=no_rate())
    assert report.service_error.kind is ErrorKind.SERVICE and "TWILIO_AUTH_TOKEN" in report.service_error.detail
    assert report.left == [(0, report.service_error), (1, report.service_error)]
    assert twilio.stats()["requests"] == 0
    settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = "token", ""
    with pytest.raises(ImproperlyConfigured, match="TWILIO_MESSAGING_SERVICE_SID .* or TWILIO_FROM_NUMBER"):
        sms.transport()


def test_the_settings_refuse_twilio_without_its_account(tmp_path):
    code = "import portal_project.settings as s; print('|'.join(s.PRODUCTION_CONFIG_ERRORS))"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "true", "PORTAL_VAR_DIR": str(tmp_path), "SMS_PROVIDER": "twilio",
           "TWILIO_ACCOUNT_SID": twilio_standin.ACCOUNT_SID}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "TWILIO_AUTH_TOKEN must be set" in result.stdout and "TWILIO_FROM_NUMBER" in result.stdout
    assert "TWILIO_ACCOUNT_SID must be set" not in result.stdout


# -- one text ---------------------------------------------------------------------------------------


def test_one_text_goes_through_the_shared_rate_and_is_classified(twilio):
    limiter = no_rate()
    outcome = sms.send_text(Text(key=1, to="+16175550123", body=BODY), limiter=limiter)
    assert outcome.sent and outcome.sid.startswith("SM")
    twilio.configure(rate_limit=1, burst=1)
    sms.send_text(Text(key=2, to="+16175550124", body=BODY), limiter=limiter)
    throttled = sms.send_text(Text(key=3, to="+16175550125", body=BODY), limiter=limiter)
    assert throttled.error.kind is ErrorKind.THROTTLED and "20429" in throttled.error.detail
    assert limiter.paused_for() > 0.5  # every sender of the account now waits
    refused = sms.send_text(Text(key=4, to=twilio_standin.NOT_MOBILE, body=BODY), limiter=limiter, max_wait=5)
    assert refused.error.kind is ErrorKind.REFUSED and refused.error.code == NOT_MOBILE


def test_one_text_waits_no_longer_than_it_may(twilio):
    limiter = no_rate()
    limiter.slow_down(30)
    outcome = sms.send_text(Text(key=1, to="+16175550123", body=BODY), limiter=limiter, max_wait=1)
    assert outcome.error.kind is ErrorKind.THROTTLED and 25 < outcome.error.retry_after <= 30
    assert twilio.stats()["requests"] == 0


def test_the_configured_account_rate_is_the_sms_one(twilio, settings):
    settings.PORTAL_SMS_RATE_LIMIT = 1
    assert sms.account_rate().name == "sms" and sms.account_rate().configured == 1


# -- the account's rate across concurrent senders ------------------------------------------------


def concurrent_senders(store: str, *, senders: int, each: int, rate: float, after_each=lambda: None):
    """`senders` threads (as many worker processes would be), each with its own limiter on the
    shared store, send `each` texts apiece."""
    reports, errors = [], []

    def sender(index: int):
        try:
            limiter = rate_limiter("sms", rate=rate, store=store)
            report = sms.send_texts(
                texts(each, start=index * 100), deadline=time.monotonic() + 30, limiter=limiter, concurrency=4,
            )
            reports.append(report)
        except Exception as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)
        finally:
            after_each()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return reports


def assert_the_rate_held(twilio, reports, *, total: int, rate: float):
    stats = twilio.stats()
    assert sum(len(r.sent) for r in reports) == total == stats["accepted"]
    assert stats["throttled"] == 0 and sum(r.throttled for r in reports) == 0
    times = sorted(m["accepted_at"] for m in twilio.accepted())
    # Spaced at our rate: after the first (a sender's first call also opens its connection, so it
    # can arrive late), the other n - 1 texts span at least n - 2 intervals.
    assert times[-1] - times[1] >= (total - 2) / rate - 0.1


@pytest.mark.django_db(transaction=True)
def test_senders_in_several_workers_share_the_accounts_rate_in_the_database(twilio):
    """Twilio's limit (6 a second, 2 at once after a pause) is above ours (5 a second): three
    senders together keep to ours, so Twilio never answers 429."""
    from django.db import connection

    twilio.configure(rate_limit=6, burst=2)
    reports = concurrent_senders("database", senders=3, each=4, rate=5, after_each=lambda: connection.close())
    assert_the_rate_held(twilio, reports, total=12, rate=5)


@pytest.mark.redis
def test_senders_in_several_workers_share_the_accounts_rate_in_redis(twilio):
    twilio.configure(rate_limit=6, burst=2)
    reports = concurrent_senders(redis_url(), senders=3, each=4, rate=5)
    assert_the_rate_held(twilio, reports, total=12, rate=5)


def test_without_a_shared_rate_the_same_senders_are_throttled(twilio):
    """The control for the two tests above: the stand-in's limit does bite."""
    twilio.configure(rate_limit=6, burst=2)
    report, _ = send(texts(12), concurrency=4)
    assert twilio.stats()["throttled"] > 0 and len(report.sent) == 12
