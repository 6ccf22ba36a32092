"""What Twilio's errors mean for a text: its API's answers (the real library's
TwilioRestException) classified, a connection that never opened against one whose answer never
came, and the error codes of its status callbacks read the same way."""

import pytest
from twilio.base.exceptions import TwilioRestException

from core.sending import engine
from core.sending.errors import (
    CANNOT_ROUTE,
    INVALID_NUMBER,
    NOT_MOBILE,
    OPTED_OUT,
    UNKNOWN_OUTCOME,
    ErrorKind,
    classify,
    twilio_delivery_error,
)
from core.sending.transports import text as text_transport
from tests.core.channels import no_rate, text_items

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sms_rate")]


@pytest.mark.parametrize(
    "status, code, kind",
    [
        (400, 21211, ErrorKind.REFUSED), (400, 21614, ErrorKind.REFUSED), (400, 21610, ErrorKind.REFUSED),
        (400, 21612, ErrorKind.REFUSED), (400, 21408, ErrorKind.REFUSED), (400, 21602, ErrorKind.REFUSED),
        (429, 20429, ErrorKind.THROTTLED), (429, None, ErrorKind.THROTTLED),
        (401, 20003, ErrorKind.SERVICE), (404, 20404, ErrorKind.SERVICE), (400, 21212, ErrorKind.SERVICE),
        (400, 21606, ErrorKind.SERVICE), (400, 21659, ErrorKind.SERVICE), (400, 21608, ErrorKind.SERVICE),
        (500, 20500, ErrorKind.TEMPORARY), (503, 503, ErrorKind.TEMPORARY), (502, None, ErrorKind.TEMPORARY),
    ],
)
def test_twilios_answers_are_classified(status, code, kind):
    exc = TwilioRestException(status, "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
                              "Unable to create record: The 'To' number +16175550123 is not valid", code=code, method="POST")
    error = classify(exc)
    assert error.kind is kind
    assert "+1617" not in error.detail  # Twilio's message names the number; ours does not
    assert bool(error.code) is (kind is ErrorKind.REFUSED)


def test_a_connection_that_never_opened_is_temporary_a_timeout_after_the_request_is_an_unknown_outcome(twilio, settings):
    settings.TWILIO_API_URL = "http://127.0.0.1:9"  # nothing listens there: no request went
    outcome = engine.send_one(text_items(1)[0], via=text_transport.for_one(), limiter=no_rate())
    assert outcome.error.kind is ErrorKind.TEMPORARY and outcome.error.code == ""
    settings.TWILIO_API_URL, settings.TWILIO_TIMEOUT = twilio.url, 0.2
    twilio.configure(latency=1.0)  # the request went; the answer would come too late
    outcome = engine.send_one(text_items(1)[0], via=text_transport.for_one(), limiter=no_rate())
    assert outcome.error.kind is ErrorKind.REFUSED and outcome.error.code == UNKNOWN_OUTCOME


@pytest.mark.parametrize(
    "code, kind, ours",
    [
        ("30006", ErrorKind.REFUSED, NOT_MOBILE), ("30005", ErrorKind.REFUSED, INVALID_NUMBER),
        ("21610", ErrorKind.REFUSED, OPTED_OUT), ("30003", ErrorKind.TEMPORARY, CANNOT_ROUTE),
        ("30034", ErrorKind.SERVICE, ""), ("39999", ErrorKind.REFUSED, "refused"), (None, ErrorKind.REFUSED, "refused"),
    ],
)
def test_a_status_callbacks_error_code_is_read_the_same_way(code, kind, ours):
    error = twilio_delivery_error(code)
    assert (error.kind, error.code) == (kind, ours)
