"""Only Twilio's signed POSTs reach the app's text webhooks (`core.sending.text_webhooks`): signed
with the auth token for the public URL, checked against tampering, 404 without Twilio; end to end,
the stand-in's status callbacks and a STOP reply pass the gate of a live server; reply keywords as
Twilio reads them."""

import time

import pytest

from core.sending import engine
from core.sending.errors import OPTED_OUT
from core.sending.text_webhooks import reply_keyword
from core.sending.transports import text as text_transport
from tests import twilio_standin
from tests.core.channels import no_rate, send_many, text_items

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sms_rate")]

STATUS_PATH = "/texts/status/"
INBOUND_PATH = "/texts/inbound/"


@pytest.fixture
def webhooks(twilio, settings):
    from tests.core import text_webhook_urls

    settings.ROOT_URLCONF = "tests.core.text_webhook_urls"
    text_webhook_urls.RECEIVED.clear()
    return text_webhook_urls.RECEIVED


def post_status(client, params, *, signature=None, path=STATUS_PATH):
    """POST as Twilio would to PORTAL_BASE_URL + path (signature "" = none)."""
    url = "https://portal.example.test" + path
    headers = {} if signature == "" else {"HTTP_X_TWILIO_SIGNATURE": signature or twilio_standin.sign(url, params)}
    return client.post(path, params, **headers)


def test_a_signed_status_callback_reaches_the_view(webhooks):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)  # Twilio holds no CSRF token
    params = twilio_standin.status_params("SM" + "a" * 32, "delivered", to="+16175550123")
    response = post_status(client, params)
    assert response.status_code == 204
    assert webhooks == [("status", params)]


def test_an_unsigned_or_badly_signed_request_is_403_and_reaches_nothing(client, webhooks):
    params = twilio_standin.status_params("SM" + "a" * 32, "delivered", to="+16175550123")
    missing = post_status(client, params, signature="")
    assert missing.status_code == 403 and missing.json()["error"] == "unsigned"
    other_token = twilio_standin.sign("https://portal.example.test" + STATUS_PATH, params, auth_token="someone-elses")
    assert post_status(client, params, signature=other_token).status_code == 403
    tampered = {**params, "MessageStatus": "undelivered"}
    signed_for_original = twilio_standin.sign("https://portal.example.test" + STATUS_PATH, params)
    response = post_status(client, tampered, signature=signed_for_original)
    assert response.status_code == 403 and response.json()["error"] == "bad_signature"
    assert webhooks == []


def test_the_signature_is_checked_against_the_public_url_not_the_one_django_sees(client, webhooks, settings):
    """Behind a TLS proxy Django sees http://testserver; Twilio signed PORTAL_BASE_URL's https."""
    params = twilio_standin.inbound_params(from_="+16175550123", body="Hello")
    as_django_sees_it = twilio_standin.sign("http://testserver" + INBOUND_PATH, params)
    assert post_status(client, params, path=INBOUND_PATH, signature=as_django_sees_it).status_code == 403
    assert post_status(client, params, path=INBOUND_PATH).status_code == 200
    with_query = INBOUND_PATH + "?practice=3"
    assert post_status(client, params, path=with_query).status_code == 200
    assert [name for name, _ in webhooks] == ["inbound", "inbound"]


def test_webhooks_are_404_without_twilio_and_405_for_anything_but_post(client, webhooks, settings):
    params = twilio_standin.status_params("SM" + "a" * 32, "sent", to="+16175550123")
    assert client.get(STATUS_PATH).status_code == 405
    settings.SMS_PROVIDER = ""
    assert post_status(client, params).status_code == 404
    assert webhooks == []


@pytest.mark.django_db(transaction=True)
def test_the_standins_status_callbacks_and_replies_pass_the_gate(twilio, live_server, settings):
    """End to end over HTTP: texts sent through the stand-in get queued, sent, delivered (a
    landline: undelivered, 30006) posted to the live server, signed, and accepted there; a STOP
    reply reaches the inbound view and Twilio refuses the next text with 21610."""
    from tests.core import text_webhook_urls

    settings.ROOT_URLCONF = "tests.core.text_webhook_urls"
    settings.PORTAL_BASE_URL = live_server.url
    text_webhook_urls.RECEIVED.clear()
    twilio.configure(landlines=["+16175550001"])
    report, _ = send_many(text_items(2, callback=live_server.url + STATUS_PATH), via=text_transport.for_many())
    assert report.sent == 2
    deadline = time.monotonic() + 10
    while len(twilio.callbacks()) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    callbacks = twilio.callbacks()
    assert [c["answer"] for c in callbacks] == [204] * 6
    statuses = {}
    for name, fields in text_webhook_urls.RECEIVED:
        statuses.setdefault(fields["To"], []).append((fields["MessageStatus"], fields.get("ErrorCode")))
    assert statuses == {
        "+16175550000": [("queued", None), ("sent", None), ("delivered", None)],
        "+16175550001": [("queued", None), ("sent", None), ("undelivered", "30006")],
    }
    answer = twilio.reply(live_server.url + INBOUND_PATH, from_="+16175550000", body="Stop")
    assert answer["answer"] == 200 and text_webhook_urls.RECEIVED[-1] == ("inbound", answer["params"])
    again = engine.send_one(text_items(1)[0], via=text_transport.for_one(), limiter=no_rate())
    assert again.error.code == OPTED_OUT


@pytest.mark.parametrize(
    "fields, keyword",
    [
        ({"Body": "STOP"}, "stop"), ({"Body": " stop. "}, "stop"), ({"Body": "Unsubscribe"}, "stop"),
        ({"Body": "quit!"}, "stop"), ({"Body": "Start"}, "start"), ({"Body": "unstop"}, "start"),
        ({"Body": "HELP"}, "help"), ({"Body": "info"}, "help"), ({"Body": "Please stop texting me"}, None),
        ({"Body": "Arret", "OptOutType": "STOP"}, "stop"), ({"Body": "yes"}, "start"), ({"Body": ""}, None),
    ],
)
def test_reply_keywords_follow_twilio(fields, keyword):
    assert reply_keyword(fields) == keyword
