"""What only the text channel has (`core.sending.transports.text`), through the real twilio client to
the local Twilio stand-in (tests/twilio_standin/): the sid and the status callback, a messaging
service as the sender, Twilio's refusals with the code the app acts on, a call whose answer never
came (never sent again: a text goes at most once), a sender that is not ours, the settings, the
file transport without a provider, and the account's rate across concurrent senders. What every
channel shares is in test_engine.py; what Twilio's errors mean in test_text_errors.py."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.sending import engine, ratelimit
from core.sending.errors import (
    CANNOT_ROUTE,
    INVALID_NUMBER,
    NOT_MOBILE,
    OPTED_OUT,
    UNKNOWN_OUTCOME,
    ErrorKind,
)
from core.sending.ratelimit import make as rate_limiter
from core.sending.transports import Item
from core.sending.transports import text as text_transport
from core.sending.transports.text import Text
from tests import twilio_standin
from tests.conftest import redis_url
from tests.core.channels import BODY, no_rate, send_many, text_items

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sms_rate")]

ROOT = Path(__file__).resolve().parents[2]


def send_texts(batch, **kwargs):
    return send_many(batch, via=text_transport.for_many(), **kwargs)


def text(key, to, body=BODY) -> Item:
    return Item(key=key, to=to, payload=Text(body))


# -- sending ------------------------------------------------------------------------------------


def test_a_text_is_sent_and_recorded_with_twilios_sid(twilio):
    twilio.configure(callbacks=False)  # nothing listens at the callback's address
    report, recorder = send_texts(text_items(1, callback="https://portal.example.test/texts/status/"))
    [(key, sid)] = recorder.flushes[-1].sent
    assert key == 0 and sid.startswith("SM") and len(sid) == 34 and report.sent == 1
    [accepted] = twilio.accepted()
    assert (accepted["sid"], accepted["to"], accepted["from"], accepted["body"]) == (sid, "+16175550000", twilio_standin.FROM_NUMBER, BODY)
    assert accepted["status_callback"] == "https://portal.example.test/texts/status/"
    assert accepted["num_segments"] == "1"
    assert (report.failed, report.left, report.service_error) == (0, [], None)


def test_through_a_messaging_service_the_service_picks_the_sender(twilio, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = twilio_standin.MESSAGING_SERVICE_SID
    settings.TWILIO_FROM_NUMBER = ""
    report, _ = send_texts(text_items(2))
    assert report.sent == 2
    assert {m["messaging_service_sid"] for m in twilio.accepted()} == {twilio_standin.MESSAGING_SERVICE_SID}


def test_without_a_provider_texts_are_written_as_readable_files(settings, tmp_path):
    settings.SMS_PROVIDER = ""
    settings.VAR_DIR = tmp_path
    settings.TWILIO_FROM_NUMBER = ""
    report, recorder = send_texts([Item(key=7, to="+16175550123", payload=Text("Hello from Maple Dental"))])
    [(key, sid)] = recorder.flushes[-1].sent
    assert key == 7 and sid.startswith("file-") and report.sent == 1
    [written] = list((tmp_path / "texts").glob("*.txt"))
    content = written.read_text(encoding="utf-8")
    assert sid in written.name
    assert "To: +16175550123\n" in content and "From: Practice Portal\n" in content and "\nDate: 20" in content
    assert "Segments: 1 (GSM-7, 23 characters)" in content
    assert content.endswith("\n\nHello from Maple Dental\n")
    assert not list((tmp_path / "texts").glob("*.part"))


def test_one_text_through_the_file_transport(settings, tmp_path):
    settings.SMS_PROVIDER = ""
    settings.VAR_DIR = tmp_path
    outcome = engine.send_one(text(1, "+16175550123", "Hi"), via=text_transport.for_one(), limiter=no_rate())
    assert outcome.sent and outcome.message_id.startswith("file-")
    assert len(list((tmp_path / "texts").glob("*.txt"))) == 1


# -- refusals -----------------------------------------------------------------------------------


def test_numbers_twilio_refuses_are_refused_with_the_code_the_app_acts_on(twilio):
    twilio.configure(unsubscribed=["+16175550150"])
    batch = [
        text("invalid", twilio_standin.INVALID_NUMBER), text("landline", twilio_standin.NOT_MOBILE),
        text("stopped", twilio_standin.UNSUBSCRIBED), text("stopped-here", "+16175550150"),
        text("unreachable", twilio_standin.CANNOT_ROUTE), text("abroad", twilio_standin.REGION_NOT_ENABLED),
        text("fine", "+16175550123"),
    ]
    report, recorder = send_texts(batch)
    refused = recorder.failed
    assert {key: error.code for key, error in refused.items()} == {
        "invalid": INVALID_NUMBER, "landline": NOT_MOBILE, "stopped": OPTED_OUT, "stopped-here": OPTED_OUT,
        "unreachable": CANNOT_ROUTE, "abroad": CANNOT_ROUTE,
    }
    assert all(error.kind is ErrorKind.REFUSED for error in refused.values())
    assert "21610" in refused["stopped"].detail and "STOP" in refused["stopped"].detail
    # Staff read the reason; the number (and the text) never appear in it.
    assert not any("+1" in error.detail or "Maple" in error.detail for error in refused.values())
    assert [key for f in recorder.flushes for key, _ in f.sent] == ["fine"]
    assert (report.sent, report.failed) == (1, 6)


def test_a_call_whose_answer_never_came_is_not_sent_again_the_text_goes_at_most_once(twilio, settings, monkeypatch):
    monkeypatch.setattr(engine, "RETRY_WAITS", (0.05, 0.05))
    settings.TWILIO_TIMEOUT = 0.3
    twilio.configure(latency=1.0)  # Twilio takes the text, its answer comes after our timeout
    report, recorder = send_texts(text_items(1), concurrency=1)
    assert (report.sent, report.left) == (0, [])
    [(key, error)] = recorder.failed.items()
    assert (key, error.code) == (0, UNKNOWN_OUTCOME) and "may or may not have been sent" in error.detail
    time.sleep(1.0)
    assert twilio.stats()["requests"] == 1  # asked once: never a second text


def test_a_sender_that_is_not_ours_is_a_service_error(twilio, settings):
    settings.TWILIO_FROM_NUMBER = "+16175559999"
    report, _ = send_texts(text_items(3), concurrency=1)
    assert report.service_error.kind is ErrorKind.SERVICE and "21606" in report.service_error.detail
    assert "TWILIO_FROM_NUMBER" in report.service_error.detail
    assert twilio.stats()["requests"] == 1 and len(report.left) == 3


def test_bad_credentials_name_the_settings_to_check(twilio, settings):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    report, _ = send_texts(text_items(2), concurrency=1)
    assert "20003" in report.service_error.detail and "TWILIO_AUTH_TOKEN" in report.service_error.detail


# -- settings -----------------------------------------------------------------------------------


def test_a_misconfiguration_names_the_missing_setting(twilio, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    with pytest.raises(ImproperlyConfigured, match="TWILIO_AUTH_TOKEN"):
        text_transport.for_many().open()
    report, _ = send_texts(text_items(2))
    assert report.service_error.kind is ErrorKind.SERVICE and "TWILIO_AUTH_TOKEN" in report.service_error.detail
    assert [item.key for item in report.left] == [0, 1]
    assert twilio.stats()["requests"] == 0
    settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = "token", ""
    with pytest.raises(ImproperlyConfigured, match="TWILIO_MESSAGING_SERVICE_SID .* or TWILIO_FROM_NUMBER"):
        text_transport.for_many().open()
    settings.SMS_PROVIDER = "carrier-pigeon"
    with pytest.raises(ImproperlyConfigured, match='SMS_PROVIDER must be "twilio" or empty'):
        text_transport.for_many()


def test_the_settings_refuse_twilio_without_its_account(tmp_path):
    code = "import portal_project.settings as s; print('|'.join(s.PRODUCTION_CONFIG_ERRORS))"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "true", "PORTAL_VAR_DIR": str(tmp_path), "SMS_PROVIDER": "twilio",
           "TWILIO_ACCOUNT_SID": twilio_standin.ACCOUNT_SID}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "TWILIO_AUTH_TOKEN must be set" in result.stdout and "TWILIO_FROM_NUMBER" in result.stdout
    assert "TWILIO_ACCOUNT_SID must be set" not in result.stdout


def test_the_text_account_has_its_own_rate(twilio, settings):
    settings.PORTAL_SMS_RATE_LIMIT = 1
    limiter = ratelimit.limiter(text_transport.for_many().account)
    assert limiter.name == "sms" and limiter.configured == 1


def test_one_text_reuses_its_threads_connection_from_one_task_to_the_next(twilio):
    assert text_transport.for_one() is text_transport.for_one()


# -- the account's rate across concurrent senders ------------------------------------------------


def concurrent_senders(store: str, *, senders: int, each: int, rate: float, after_each=lambda: None):
    """`senders` threads (as many worker processes would be), each with its own limiter on the
    shared store, send `each` texts apiece."""
    reports, errors = [], []

    def sender(index: int):
        try:
            limiter = rate_limiter("sms", rate=rate, store=store)
            report = engine.send_many(
                text_items(each, start=index * 100), via=text_transport.for_many(), deadline=time.monotonic() + 30,
                limiter=limiter, concurrency=4,
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
    assert sum(r.sent for r in reports) == total == stats["accepted"]
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
