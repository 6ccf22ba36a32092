"""A local stand-in of Twilio's Messages API and its webhooks, for tests and benchmarks.

It speaks enough of Twilio for the REAL `twilio` client to send through it unchanged:
``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with the form fields To, From or
MessagingServiceSid, Body and StatusCallback, behind HTTP basic auth (account SID : auth token).
Point a client at it with ``client.api.base_url = standin.url`` (the API domain's base, which
``client.messages`` builds its URLs on); the portal does that from ``TWILIO_API_URL``
(`StandIn.django_settings()` / `StandIn.environment()` give the whole configuration).

Like Twilio it answers 201 with the Message resource (``sid`` "SM" + 32 hex, ``status`` "queued",
or "accepted" through a messaging service, ``num_segments``, ``error_code`` null, ...) and errors as
Twilio's JSON ``{"code", "message", "more_info", "status"}``:

* bad credentials: 401, code 20003; another account's URL: 404, 20404;
* a sender that is not ours (`FROM_NUMBER`, `MESSAGING_SERVICE_SID`): 400, 21606 / 21705;
* Twilio's magic test numbers as recipients: +15005550001 invalid (21211), +15005550002 cannot
  route (21612), +15005550003 no permission for the region (21408), +15005550004 unsubscribed
  (21610), +15005550009 not a mobile (21614); any To not in E.164 is 21211; `Behaviour.unsubscribed`
  numbers answer 21610 (a STOP reply through `/_standin/inbound` adds the number, START removes it);
* more than `Behaviour.rate_limit` messages a second (token bucket): 429, code 20429;
* the next `Behaviour.fail_next` calls: `fail_status` (500 / 503);
* each answer after `latency` (+ up to `jitter`) seconds.

Accepted texts with a StatusCallback get Twilio's status callbacks, signed with the auth token
(``X-Twilio-Signature``, `twilio.request_validator.RequestValidator.compute_signature`): queued,
sent, then delivered, or undelivered with ErrorCode 30006 for `Behaviour.landlines`. For the app's
webhook tests: `sign(url, params)`, `status_params(...)`, `inbound_params(...)` build exactly what
Twilio posts (for Django's test client: ``client.post(path, params,
HTTP_X_TWILIO_SIGNATURE=sign(settings.PORTAL_BASE_URL + path, params))``), and `post_signed(url,
params)` / `post_inbound(url, ...)` post it over HTTP (to a live server).

It counts requests, accepted texts, 429s, 5xx, refusals by code, calls in flight (and the most at
once), numbers texted twice and the callbacks posted, and keeps the accepted texts (with their
acceptance times) for tests to read. Run it in a thread of the test process (`StandIn().start()`)
or as its own process (``python -m tests.twilio_standin --port 8026 --latency 0.2 --rate-limit 1``).
Both are driven over HTTP: ``GET /_standin/stats``, ``GET /_standin/messages``, ``GET
/_standin/callbacks``, ``POST /_standin/config`` (JSON of `Behaviour` fields), ``POST
/_standin/reset``, ``POST /_standin/inbound`` (JSON: url, from, body[, to, signed_url]).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import email.utils
import json
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "5fa1d0c0" * 4
AUTH_TOKEN = "standin-twilio-auth-token"
MESSAGING_SERVICE_SID = "MG" + "5fa1d0c0" * 4
FROM_NUMBER = "+15005550006"  # Twilio's magic "valid sender" test number
API_VERSION = "2010-04-01"
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

#: Twilio's magic recipient numbers (test credentials), and what Twilio answers for each.
MAGIC_RECIPIENTS = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region of the 'To' number: {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
INVALID_NUMBER = "+15005550001"
CANNOT_ROUTE = "+15005550002"
REGION_NOT_ENABLED = "+15005550003"
UNSUBSCRIBED = "+15005550004"
NOT_MOBILE = "+15005550009"

_OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
_OPT_IN = {"START", "YES", "UNSTOP"}
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


@dataclass
class Behaviour:
    """How the account behaves; every field can be changed while it runs."""

    latency: float = 0.0  # seconds before each answer
    jitter: float = 0.0  # up to this many seconds more, spread evenly
    rate_limit: float = 0.0  # messages a second the account may send; 0 = no limit
    burst: float = 0.0  # token bucket size; 0 = one second's worth, at least 2 (a text a few ms early is not refused)
    fail_next: int = 0  # answer this many coming calls with `fail_status`
    fail_status: int = 503
    auth_fail: bool = False  # every call is refused as bad credentials (20003)
    unsubscribed: list = field(default_factory=list)  # numbers that replied STOP: 21610
    landlines: list = field(default_factory=list)  # accepted, then undelivered with 30006
    callbacks: bool = True  # post status callbacks to each text's StatusCallback
    callback_delay: float = 0.02  # seconds before each status callback
    keep_messages: bool = True  # keep accepted texts for /_standin/messages (off for benchmarks)


@dataclass
class Counters:
    requests: int = 0
    accepted: int = 0
    throttled: int = 0  # 429 answers
    failed_5xx: int = 0
    refused: Counter = field(default_factory=Counter)  # Twilio error code -> answers
    auth_refused: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_accepted_at: Optional[float] = None
    last_accepted_at: Optional[float] = None
    callbacks_posted: int = 0
    callbacks_failed: int = 0  # the receiver answered other than 2xx, or could not be reached
    recipients: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "recipients"}
        data["refused"] = {str(code): n for code, n in self.refused.items()}
        data["recipients_texted_twice"] = sum(1 for n in self.recipients.values() if n > 1)
        data["distinct_recipients"] = len(self.recipients)
        return data


class TwilioError(Exception):
    """An answer in Twilio's error format."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
                "status": self.status}


# == what Twilio sends to our webhooks ============================================================


def sign(url: str, params: dict[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio sends with a POST of `params` to `url`."""
    return RequestValidator(auth_token).compute_signature(url, params)


def status_params(sid: str, status: str, *, to: str, from_: str = FROM_NUMBER, error_code: Optional[int] = None,
                  messaging_service_sid: str = "", account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form fields of Twilio's status callback for a text."""
    params = {
        "AccountSid": account_sid, "ApiVersion": API_VERSION, "From": from_, "To": to,
        "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def inbound_params(*, from_: str, body: str, to: str = FROM_NUMBER, message_sid: str = "", messaging_service_sid: str = "",
                   opt_out_type: str = "", account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form fields of Twilio's webhook for a text a patient sent us. `opt_out_type` (STOP,
    START, HELP) is what a messaging service with Advanced Opt-Out adds for its keywords."""
    sid = message_sid or "SM" + uuid.uuid4().hex
    params = {
        "AccountSid": account_sid, "ApiVersion": API_VERSION, "MessageSid": sid, "SmsSid": sid,
        "SmsMessageSid": sid, "From": from_, "To": to, "Body": body, "NumMedia": "0",
        "NumSegments": str(_segments(body)), "SmsStatus": "received",
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return params


def post_signed(url: str, params: dict[str, str], *, signed_url: str = "", auth_token: str = AUTH_TOKEN,
                timeout: float = 10.0) -> tuple[int, str]:
    """POST `params` to `url` as Twilio does, signed for `signed_url` (the public URL Twilio
    was given, when `url` is the address behind the proxy; default `url`). (status, body)."""
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": sign(signed_url or url, params, auth_token),
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def post_inbound(url: str, *, from_: str, body: str, signed_url: str = "", **fields_: str) -> tuple[int, str]:
    """POST a patient's text to the app's inbound webhook at `url`, signed as Twilio signs it."""
    return post_signed(url, inbound_params(from_=from_, body=body, **fields_), signed_url=signed_url)


# == the account ==================================================================================


class Account:
    """The state of the Twilio account: behaviour, token bucket, counters, accepted texts."""

    def __init__(self, behaviour: Optional[Behaviour] = None):
        self.behaviour = behaviour or Behaviour()
        self.counters = Counters()
        self.messages: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self._tokens: Optional[float] = None
        self._refilled = time.monotonic()

    def reset(self) -> None:
        self.counters = Counters()
        self.messages, self.callbacks = [], []
        self._tokens = None

    def configure(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - {f.name for f in fields(Behaviour)}
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.behaviour, name, list(value) if name in ("unsubscribed", "landlines") else value)
        self._tokens = None

    def take_token(self) -> Optional[float]:
        """None if the message may go; else the seconds until a token is free."""
        rate = self.behaviour.rate_limit
        if rate <= 0:
            return None
        capacity = self.behaviour.burst or max(rate, 2.0)
        now = time.monotonic()
        if self._tokens is None:
            self._tokens, self._refilled = capacity, now
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate

    def check_auth(self, headers: dict[str, str], account: str) -> None:
        kind, _, value = headers.get("authorization", "").partition(" ")
        try:
            sid, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            sid, token = "", ""
        if self.behaviour.auth_fail or kind.lower() != "basic" or (sid, token) != (ACCOUNT_SID, AUTH_TOKEN):
            self.counters.auth_refused += 1
            raise TwilioError(401, 20003, "Authenticate")
        if account != sid:
            resource = f"/2010-04-01/Accounts/{account}/Messages.json"
            raise TwilioError(404, 20404, f"The requested resource {resource} was not found")

    def create_message(self, form: dict[str, str]) -> dict[str, Any]:
        """Validate a Messages.json POST like Twilio; the Message resource, or TwilioError."""
        to, body = form.get("To", "").strip(), form.get("Body", "")
        sender, service = form.get("From", "").strip(), form.get("MessagingServiceSid", "").strip()
        if not to:
            raise self._refuse(21604, "A 'To' phone number is required.")
        if not (sender or service):
            raise self._refuse(21603, "A 'From' phone number is required.")
        if service and service != MESSAGING_SERVICE_SID:
            raise self._refuse(21705, "The Messaging Service Sid is invalid.")
        if sender and not service and sender != FROM_NUMBER:
            raise self._refuse(21606, f"The From phone number {sender} is not a valid, SMS-capable inbound phone number or short code for your account.")
        if not body:
            raise self._refuse(21602, "Message body is required.")
        if len(body) > 1600:
            raise self._refuse(21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in MAGIC_RECIPIENTS:
            code, message = MAGIC_RECIPIENTS[to]
            raise self._refuse(code, message.format(to=to))
        if not E164.match(to):
            raise self._refuse(21211, f"The 'To' number {to} is not a valid phone number.")
        if to in self.behaviour.unsubscribed:
            raise self._refuse(21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + uuid.uuid4().hex
        now = time.time()
        stamp = email.utils.formatdate(now, usegmt=False).replace("-0000", "+0000")
        message = {
            "account_sid": ACCOUNT_SID, "api_version": API_VERSION, "body": body, "date_created": stamp,
            "date_sent": None, "date_updated": stamp, "direction": "outbound-api", "error_code": None,
            "error_message": None, "from": None if service else sender, "messaging_service_sid": service or None,
            "num_media": "0", "num_segments": str(_segments(body)), "price": None, "price_unit": "USD", "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        }
        counters = self.counters
        counters.accepted += 1
        counters.recipients[to] += 1
        counters.first_accepted_at = counters.first_accepted_at or now
        counters.last_accepted_at = now
        if self.behaviour.keep_messages:
            self.messages.append({**message, "status_callback": form.get("StatusCallback", ""), "accepted_at": now})
        return message

    def reply(self, *, from_: str, body: str) -> None:
        """Twilio's own handling of a patient's STOP / START reply: no more texts / texts again."""
        word = body.strip().rstrip(".!").strip().upper()
        if word in _OPT_OUT and from_ not in self.behaviour.unsubscribed:
            self.behaviour.unsubscribed.append(from_)
        elif word in _OPT_IN and from_ in self.behaviour.unsubscribed:
            self.behaviour.unsubscribed.remove(from_)

    def _refuse(self, code: int, message: str) -> TwilioError:
        self.counters.refused[code] += 1
        return TwilioError(400, code, message)


# == the server ===================================================================================


class StandIn:
    """One stand-in Twilio account on 127.0.0.1."""

    def __init__(self, port: int = 0, behaviour: Optional[Behaviour] = None):
        self.account = Account(behaviour)
        self.port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._callbacks_due: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def django_settings(self, *, messaging_service: bool = False, **overrides: Any) -> dict[str, Any]:
        """The settings that send the portal's texts here through the real twilio client."""
        return {
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID if messaging_service else "",
            "TWILIO_FROM_NUMBER": "" if messaging_service else FROM_NUMBER,
            "TWILIO_API_URL": self.url, "TWILIO_TIMEOUT": 10.0, **overrides,
        }

    def environment(self, *, messaging_service: bool = False) -> dict[str, str]:
        """The same as environment variables, for a worker process."""
        return {key: str(value) for key, value in self.django_settings(messaging_service=messaging_service).items()}

    def client(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        """A real twilio Client that talks to this stand-in."""
        from twilio.rest import Client

        client = Client(account_sid, auth_token)
        client.api.base_url = self.url
        return client

    # -- in a thread of this process (tests) --------------------------------------------------

    def start(self) -> "StandIn":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="twilio-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Twilio stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # -- as its own process (benchmarks, by hand) ---------------------------------------------

    async def serve_forever(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        print(f"Twilio stand-in listening on {self.url} (account {ACCOUNT_SID}, token {AUTH_TOKEN})", flush=True)
        async with self._server:
            await self._server.serve_forever()

    # -- one connection -----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, payload = await self._respond(method, urllib.parse.urlsplit(target).path, headers, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}"]
                if payload is not None:
                    head.append("Content-Type: application/json; charset=utf-8")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # the client went away, or the stand-in is stopping
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, headers: dict, body: bytes):
        if path.startswith("/_standin/"):
            return await self._control(method, path, body)
        match = MESSAGES_PATH.match(path)
        if match is None:
            return 404, TwilioError(404, 20404, f"The requested resource {path} was not found").body()
        if method != "POST":
            return 405, TwilioError(405, 20004, "Method not allowed").body()
        account = self.account
        counters = account.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            behaviour = account.behaviour
            delay = behaviour.latency + (behaviour.jitter * ((counters.requests * 7919) % 1000) / 1000 if behaviour.jitter else 0)
            if delay:
                await asyncio.sleep(delay)
            try:
                account.check_auth(headers, match["account"])
                if account.take_token() is not None:
                    counters.throttled += 1
                    raise TwilioError(429, 20429, "Too Many Requests")
                if behaviour.fail_next > 0:
                    behaviour.fail_next -= 1
                    counters.failed_5xx += 1
                    status = behaviour.fail_status
                    raise TwilioError(status, 20500 if status == 500 else 20503, _REASONS.get(status, "Server Error"))
                form = {key: values[-1] for key, values in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
                message = account.create_message(form)
            except TwilioError as error:
                return error.status, error.body()
            if behaviour.callbacks and form.get("StatusCallback"):
                task = asyncio.get_running_loop().create_task(self._send_statuses(message, form["StatusCallback"]))
                self._callbacks_due.add(task)
                task.add_done_callback(self._callbacks_due.discard)
            return 201, message
        finally:
            counters.in_flight -= 1

    async def _send_statuses(self, message: dict[str, Any], url: str) -> None:
        """Twilio's status callbacks for one accepted text: queued, sent, delivered (or
        undelivered with 30006 for a landline), each signed with the auth token."""
        account = self.account
        landline = message["to"] in account.behaviour.landlines
        steps = [("queued", None), ("sent", None), ("undelivered", 30006) if landline else ("delivered", None)]
        loop = asyncio.get_running_loop()
        for status, error_code in steps:
            await asyncio.sleep(account.behaviour.callback_delay)
            params = status_params(
                message["sid"], status, to=message["to"], from_=message["from"] or FROM_NUMBER, error_code=error_code,
                messaging_service_sid=message["messaging_service_sid"] or "",
            )
            for kept in account.messages:
                if kept["sid"] == message["sid"]:
                    kept["status"], kept["error_code"] = status, error_code
            answer, _ = await loop.run_in_executor(None, _post_quietly, url, params)
            account.counters.callbacks_posted += 1
            if not 200 <= answer < 300:
                account.counters.callbacks_failed += 1
            account.callbacks.append({"sid": message["sid"], "status": status, "url": url, "answer": answer})

    async def _control(self, method: str, path: str, body: bytes):
        account = self.account
        if path == "/_standin/stats":
            return 200, {**account.counters.as_dict(), "behaviour": asdict(account.behaviour)}
        if path == "/_standin/messages":
            return 200, account.messages
        if path == "/_standin/callbacks":
            return 200, account.callbacks
        if path == "/_standin/reset" and method == "POST":
            # A call still in flight (a client that gave up waiting) would land in the new counts.
            until = time.monotonic() + 10
            while account.counters.in_flight and time.monotonic() < until:
                await asyncio.sleep(0.01)
            for task in list(self._callbacks_due):  # an earlier test's texts report no more
                task.cancel()
            account.reset()
            account.configure({**asdict(Behaviour()), **json.loads(body or b"{}")})
            return 200, {"ok": True}
        if path == "/_standin/config" and method == "POST":
            try:
                account.configure(json.loads(body or b"{}"))
            except ValueError as exc:
                return 400, {"message": str(exc)}
            return 200, asdict(account.behaviour)
        if path == "/_standin/inbound" and method == "POST":
            data = json.loads(body or b"{}")
            account.reply(from_=data["from"], body=data["body"])
            params = inbound_params(from_=data["from"], body=data["body"], to=data.get("to") or FROM_NUMBER)
            answer, text = await asyncio.get_running_loop().run_in_executor(
                None, lambda: post_signed(data["url"], params, signed_url=data.get("signed_url", ""))
            )
            return 200, {"answer": answer, "body": text, "params": params}
        return 404, {"message": "unknown control path"}

    # -- the client side of the control API (tests, the benchmark) -----------------------------

    def stats(self) -> dict[str, Any]:
        return control(self.url, "stats")

    def accepted(self) -> list[dict[str, Any]]:
        return control(self.url, "messages")

    def callbacks(self) -> list[dict[str, Any]]:
        return control(self.url, "callbacks")

    def configure(self, **changes: Any) -> None:
        control(self.url, "config", changes)

    def reset(self, **behaviour: Any) -> None:
        control(self.url, "reset", behaviour)

    def reply(self, url: str, *, from_: str, body: str, to: str = FROM_NUMBER, signed_url: str = "") -> dict[str, Any]:
        """A patient texts us: the account handles STOP / START as Twilio does, and the inbound
        webhook at `url` gets the signed POST. Its answer (status, body) and the fields posted."""
        return control(self.url, "inbound", {"url": url, "from": from_, "body": body, "to": to, "signed_url": signed_url})


def control(url: str, what: str, data: Optional[dict] = None) -> Any:
    request = urllib.request.Request(
        f"{url}/_standin/{what}", data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _post_quietly(url: str, params: dict[str, str]) -> tuple[int, str]:
    try:
        return post_signed(url, params)
    except (OSError, ValueError):
        return 0, ""  # the receiver is down: Twilio would log it in its debugger


# Twilio's own count of segments (GSM-7 160/153, else UCS-2 70/67), independent of the portal's.
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
            "abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENDED = set("\f^{}\\[~]|€")


def _segments(body: str) -> int:
    if all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def main() -> None:
    parser = argparse.ArgumentParser(description="A local stand-in of Twilio's Messages API.")
    parser.add_argument("--port", type=int, default=8026)
    for spec in fields(Behaviour):
        option = f"--{spec.name.replace('_', '-')}"
        if spec.name in ("unsubscribed", "landlines"):
            parser.add_argument(option, type=lambda v: [n.strip() for n in v.split(",") if n.strip()], default=[])
        elif spec.type in ("bool", bool):
            parser.add_argument(option, type=lambda v: v.lower() in ("1", "true", "yes"), default=spec.default)
        else:
            parser.add_argument(option, type=float if spec.type in ("float", float) else int, default=spec.default)
    args = parser.parse_args()
    behaviour = Behaviour(**{spec.name: getattr(args, spec.name) for spec in fields(Behaviour)})
    try:
        asyncio.run(StandIn(args.port, behaviour).serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
