"""Fixtures for the text tests (test_engine.py, test_text*.py): the Twilio stand-in
(tests/twilio_standin/) that the real twilio client sends to, and the text account's shared rate
forgotten around a test (the modules ask for it with ``pytest.mark.usefixtures("fresh_sms_rate")``)."""

import pytest

from tests.conftest import redis_reachable, redis_url
from tests.twilio_standin import TwilioStandIn


@pytest.fixture(scope="module")
def _twilio_server():
    server = TwilioStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def twilio(_twilio_server, settings):
    """Texts go through the real twilio client to the stand-in, reset for this test; no rate of
    ours unless a test sets one."""
    _twilio_server.reset()
    for name, value in _twilio_server.django_settings().items():
        setattr(settings, name, value)
    settings.PORTAL_SMS_RATE_LIMIT = 0
    return _twilio_server


@pytest.fixture
def fresh_sms_rate():
    """The text account's shared rate starts untouched (in Redis it outlives a test)."""

    def forget():
        if redis_reachable(redis_url()):
            import redis

            redis.Redis.from_url(redis_url()).delete("portal:send-rate:sms")

    forget()
    yield
    forget()
