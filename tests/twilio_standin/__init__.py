"""A local stand-in of Twilio's Messages API and its webhooks, for tests and benchmarks.

It speaks enough of Twilio for the REAL `twilio` client to send through it unchanged:
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with the form fields To, From or
MessagingServiceSid, Body and StatusCallback, behind HTTP basic auth (account SID : auth token).
Point a client at it with ``client.api.base_url = standin.url`` (the API domain's base, which
``client.messages`` builds its URLs on); the portal does that from ``TWILIO_API_URL``
(`TwilioStandIn.django_settings()` / `TwilioStandIn.environment()` give the whole configuration).

Like Twilio it answers 201 with the Message resource (``sid`` "SM" + 32 hex, ``status`` "queued",
or "accepted" through a messaging service, ``num_segments``, ``error_code`` null, ...) and errors as
Twilio's JSON ``{"code", "message", "more_info", "status"}``:

* bad credentials: 401, code 20003; another account's URL: 404, 20404;
* a sender that is not ours (`FROM_NUMBER`, `MESSAGING_SERVICE_SID`): 400, 21606 / 21705;
* Twilio's magic test numbers as recipients: +15005550001 invalid (21211), +15005550002 cannot
  route (21612), +15005550003 no permission for the region (21408), +15005550004 unsubscribed
  (21610), +15005550009 not a mobile (21614); any To not in E.164 is 21211; `TwilioBehaviour.unsubscribed`
  numbers answer 21610 (a STOP reply through `/_standin/inbound` adds the number, START removes it);
* more than `TwilioBehaviour.rate_limit` messages a second (token bucket): 429, code 20429;
* the next `TwilioBehaviour.fail_next` calls: `fail_status` (500 / 503);
* each answer after `latency` (+ up to `jitter`) seconds.

Accepted texts with a StatusCallback get Twilio's status callbacks, signed with the auth token
(``X-Twilio-Signature``, `twilio.request_validator.RequestValidator.compute_signature`): queued,
sent, then delivered, or undelivered with ErrorCode 30006 for `TwilioBehaviour.landlines`. For the app's
webhook tests: `sign(url, params)`, `status_params(...)`, `inbound_params(...)` build exactly what
Twilio posts (for Django's test client: ``client.post(path, params,
HTTP_X_TWILIO_SIGNATURE=sign(settings.PORTAL_BASE_URL + path, params))``), and `post_signed(url,
params)` / `post_inbound(url, ...)` post it over HTTP (to a live server).

It counts requests, accepted texts, 429s, 5xx, refusals by code, calls in flight (and the most at
once), numbers texted twice and the callbacks posted, and keeps the accepted texts (with their
acceptance times) for tests to read. Run it in a thread of the test process (`TwilioStandIn().start()`)
or as its own process (``python -m tests.twilio_standin --port 8026 --latency 0.2 --rate-limit 1``).
Both are driven over HTTP: ``GET /_standin/stats``, ``GET /_standin/messages``, ``GET
/_standin/callbacks``, ``POST /_standin/config`` (JSON of `TwilioBehaviour` fields), ``POST
/_standin/reset``, ``POST /_standin/inbound`` (JSON: url, from, body[, to, signed_url]).

Layout: `account` (credentials, magic numbers, `TwilioBehaviour`, `TwilioCounters`, the `Account` that accepts
or refuses a text, Twilio's segment count), `webhooks` (what Twilio posts to the app, signed),
`server` (the HTTP server, its control API and `control`) and `__main__` (the command line).
"""

from .account import (
    ACCOUNT_SID, API_VERSION, AUTH_TOKEN, CANNOT_ROUTE, E164, FROM_NUMBER, INVALID_NUMBER, MAGIC_RECIPIENTS,
    MESSAGES_PATH, MESSAGING_SERVICE_SID, NOT_MOBILE, REGION_NOT_ENABLED, UNSUBSCRIBED, Account, TwilioBehaviour,
    TwilioCounters, TwilioError, segments,
)
from .server import TwilioStandIn, control
from .webhooks import inbound_params, post_inbound, post_signed, sign, status_params

__all__ = [
    "ACCOUNT_SID", "API_VERSION", "AUTH_TOKEN", "CANNOT_ROUTE", "E164", "FROM_NUMBER", "INVALID_NUMBER",
    "MAGIC_RECIPIENTS", "MESSAGES_PATH", "MESSAGING_SERVICE_SID", "NOT_MOBILE", "REGION_NOT_ENABLED",
    "UNSUBSCRIBED", "Account", "TwilioBehaviour", "TwilioCounters", "TwilioStandIn", "TwilioError", "control", "inbound_params",
    "post_inbound", "post_signed", "segments", "sign", "status_params",
]
