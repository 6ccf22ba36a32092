"""A local stand-in for email providers' HTTP APIs, for tests and benchmarks.

It speaks enough of four real APIs for django-anymail's own backends to send through it unchanged
(point them at it with their ``*_API_URL`` / endpoint settings; see `StandIn.anymail_settings`):

* Postmark ``POST /email`` (one message per call; ``/email/batch`` too);
* Mailgun ``POST /v3/<domain>/messages`` with ``recipient-variables`` batches (``%recipient.x%``
  substituted per recipient, as Mailgun does);
* SendGrid ``POST /v3/mail/send`` with one personalization (and its substitutions) per recipient;
* Amazon SES v2 ``POST /v2/email/outbound-emails`` (raw MIME, as boto3 sends it).

Like a provider it answers each call after a configurable latency, limits requests per second with a
token bucket and answers 429 beyond it (with ``Retry-After``), can answer the next N calls with a
temporary 5xx, refuses some recipients permanently (a local part starting ``invalid`` is not an
address; ``inactive`` has bounced before) and refuses everything with a configuration error
(``auth_fail``). It counts requests, messages, 429s and recipients emailed twice, and keeps the
messages it accepted (each recipient's own copy) for tests to read.

Run it in a thread of the test process (`StandIn().start()`) or as its own process
(``python -m tests.provider_standin --port 8025 --latency 0.08``) so that it does not share the
process it measures. Both are driven over HTTP: ``GET /_standin/stats``, ``GET /_standin/messages``,
``POST /_standin/config`` (JSON of `Behaviour` fields), ``POST /_standin/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email
import email.policy
import json
import math
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

POSTMARK_TOKEN = "standin-postmark-token"
MAILGUN_KEY = "standin-mailgun-key"
SENDGRID_KEY = "standin-sendgrid-key"
MAILGUN_DOMAIN = "mg.portal.example"


@dataclass
class Behaviour:
    """How the provider behaves; every field can be changed while it runs."""

    latency: float = 0.0  # seconds before each answer
    jitter: float = 0.0  # up to this many seconds more, spread evenly
    rate_limit: float = 0.0  # requests per second the account may make; 0 = no limit
    burst: float = 0.0  # token bucket size; 0 = one second's worth (at least 1)
    retry_after: bool = True  # send a Retry-After header with 429 answers
    fail_next: int = 0  # answer this many coming calls with `fail_status`
    fail_status: int = 503
    auth_fail: bool = False  # every call is refused as a configuration error (bad key)
    keep_messages: bool = True  # keep accepted messages for /_standin/messages (off for benchmarks)


@dataclass
class Counters:
    requests: int = 0
    messages: int = 0  # recipients accepted (a batch of 500 is 500)
    throttled: int = 0  # 429 answers
    failed_5xx: int = 0
    refused: int = 0  # permanent refusals (invalid or inactive recipients, bad requests)
    auth_refused: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_accepted_at: Optional[float] = None
    last_accepted_at: Optional[float] = None
    by_api: Counter = field(default_factory=Counter)
    recipients: Counter = field(default_factory=Counter)
    invitations: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("recipients", "invitations")}
        data["by_api"] = dict(self.by_api)
        data["recipients_emailed_twice"] = sum(1 for n in self.recipients.values() if n > 1)
        data["invitations_emailed_twice"] = sum(1 for n in self.invitations.values() if n > 1)
        data["distinct_recipients"] = len(self.recipients)
        return data


class Refused(Exception):
    """A permanent refusal of a request, in the provider's own words."""

    def __init__(self, status: int, body: Any, headers: Optional[dict] = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _kind_of(address: str) -> str:
    local = address.split("@", 1)[0].lower()
    if local.startswith("invalid") or "@" not in address:
        return "invalid"
    if local.startswith("inactive"):
        return "inactive"
    return "ok"


def _addr_spec(value: str) -> str:
    return email.utils.parseaddr(value)[1] or value.strip()


class Provider:
    """The state of one provider account: behaviour, token bucket, counters, accepted messages."""

    def __init__(self, behaviour: Optional[Behaviour] = None):
        self.behaviour = behaviour or Behaviour()
        self.counters = Counters()
        self.messages: list[dict[str, Any]] = []
        self._tokens: Optional[float] = None
        self._refilled = time.monotonic()

    def reset(self) -> None:
        self.counters = Counters()
        self.messages = []
        self._tokens = None

    def configure(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(Behaviour)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.behaviour, name, value)
        self._tokens = None

    # -- the token bucket ------------------------------------------------------------------

    def take_token(self) -> Optional[float]:
        """None if the request may go; else the seconds until a token is free."""
        rate = self.behaviour.rate_limit
        if rate <= 0:
            return None
        capacity = self.behaviour.burst or max(rate, 1.0)
        now = time.monotonic()
        if self._tokens is None:
            self._tokens, self._refilled = capacity, now
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate

    # -- recording accepted messages ----------------------------------------------------------

    def accept(self, api: str, message: dict[str, Any]) -> None:
        now = time.time()
        counters = self.counters
        counters.messages += 1
        counters.by_api[api] += 1
        counters.recipients[message["to"].lower()] += 1
        invitation = (message.get("metadata") or {}).get("invitation")
        if invitation:
            counters.invitations[invitation] += 1
        counters.first_accepted_at = counters.first_accepted_at or now
        counters.last_accepted_at = now
        if self.behaviour.keep_messages:
            self.messages.append({**message, "api": api, "accepted_at": now})


# == the four APIs ================================================================================
# Each handler gets (provider, path, headers, body) and returns (status, json body, extra headers),
# or raises Refused. They check only what a real provider would refuse.


def _postmark_one(provider: Provider, data: dict) -> dict:
    to = data.get("To") or ""
    if not data.get("From"):
        return {"ErrorCode": 300, "Message": "Invalid 'From' address: ''."}
    addresses = [_addr_spec(part) for part in to.split(",") if part.strip()]
    invalid = [a for a in addresses if _kind_of(a) == "invalid"]
    if invalid or not addresses:
        provider.counters.refused += 1
        return {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{invalid[0] if invalid else ''}'."}
    inactive = [a.lower() for a in addresses if _kind_of(a) == "inactive"]
    if inactive and len(inactive) == len(addresses):
        provider.counters.refused += 1
        return {
            "ErrorCode": 406,
            "Message": "You tried to send to recipient(s) that have been marked as inactive.\n"
            f"Found inactive addresses: {', '.join(inactive)}.\n"
            "Inactive recipients are ones that have generated a hard bounce or a spam complaint. ",
        }
    message_id = str(uuid.uuid4())
    for address in addresses:
        if address.lower() in inactive:
            continue
        provider.accept("postmark", {
            "to": address, "subject": data.get("Subject", ""), "text": data.get("TextBody", ""),
            "html": data.get("HtmlBody", ""), "metadata": data.get("Metadata") or {}, "from": data.get("From", ""),
            "tags": [data["Tag"]] if data.get("Tag") else [], "message_id": message_id,
        })
    return {"To": to, "SubmittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}


def postmark(provider: Provider, path: str, headers: dict, body: bytes):
    if headers.get("x-postmark-server-token") != POSTMARK_TOKEN or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token."})
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
    if path == "/email/batch":
        return 200, [_postmark_one(provider, one) for one in data], {}
    answer = _postmark_one(provider, data)
    return (200 if answer["ErrorCode"] == 0 else 422), answer, {}


def _substitute(text: str, values: dict[str, Any], pattern: "re.Pattern") -> str:
    return pattern.sub(lambda m: str(values.get(m.group(1), m.group(0))), text or "")


_MAILGUN_VAR = re.compile(r"%recipient\.([^%]+)%")


def mailgun(provider: Provider, path: str, headers: dict, body: bytes):
    auth = headers.get("authorization", "")
    expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    if auth != expected or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"message": "Invalid private key"})
    domain = urllib.parse.unquote(path.split("/")[2])
    if domain != MAILGUN_DOMAIN:
        raise Refused(404, {"message": "Domain not found: " + domain})
    form = _form(headers, body)
    to = [_addr_spec(a) for value in form.get("to", []) for a in value.split(",") if a.strip()]
    if not to or not form.get("from"):
        provider.counters.refused += 1
        raise Refused(400, {"message": "'to' parameter is missing" if not to else "'from' parameter is missing"})
    invalid = [a for a in to if _kind_of(a) == "invalid"]
    if invalid:
        # Mailgun refuses the whole call when any one address is not an address.
        provider.counters.refused += 1
        raise Refused(400, {"message": f"to parameter is not a valid address. please check documentation ({invalid[0]})"})
    variables = json.loads(form.get("recipient-variables", ["{}"])[0] or "{}")
    if len(to) > 1000:
        raise Refused(400, {"message": "Too many recipients: at most 1000 per message"})
    message_id = f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>"
    custom = {key[2:]: values[0] for key, values in form.items() if key.startswith("v:")}
    for address in to:
        own = variables.get(address, {}) if variables else {}
        provider.accept("mailgun", {
            "to": address,
            "subject": _substitute(form.get("subject", [""])[0], own, _MAILGUN_VAR),
            "text": _substitute(form.get("text", [""])[0], own, _MAILGUN_VAR),
            "html": _substitute(form.get("html", [""])[0], own, _MAILGUN_VAR),
            "metadata": {key: _substitute(value, own, _MAILGUN_VAR) for key, value in custom.items()},
            "from": form.get("from", [""])[0], "tags": form.get("o:tag", []), "message_id": message_id,
        })
    return 200, {"id": message_id, "message": "Queued. Thank you."}, {}


def _form(headers: dict, body: bytes) -> dict[str, list[str]]:
    content_type = headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        parsed = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        form: dict[str, list[str]] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            form.setdefault(name, []).append(part.get_content() if part.get_content_maintype() == "text" else "")
        return form
    return urllib.parse.parse_qs(body.decode(), keep_blank_values=True)


def sendgrid(provider: Provider, path: str, headers: dict, body: bytes):
    if headers.get("authorization") != f"Bearer {SENDGRID_KEY}" or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}]})
    data = json.loads(body)
    personalizations = data.get("personalizations") or []
    if len(personalizations) > 1000:
        raise Refused(400, {"errors": [{"field": "personalizations", "message": "The personalizations field may not have more than 1000 objects."}]})
    for index, personalization in enumerate(personalizations):
        for number, to in enumerate(personalization.get("to") or []):
            if _kind_of(to.get("email", "")) == "invalid":
                provider.counters.refused += 1
                raise Refused(400, {"errors": [{"field": f"personalizations.{index}.to.{number}.email",
                                                "message": "Does not contain a valid address."}]})
    content = {part["type"]: part["value"] for part in data.get("content") or []}
    message_id = uuid.uuid4().hex[:22]
    for personalization in personalizations:
        values = personalization.get("substitutions") or {}
        pattern = re.compile("|".join(re.escape(key) for key in sorted(values, key=len, reverse=True))) if values else None

        def fill(text: str) -> str:
            return pattern.sub(lambda m: values[m.group(0)], text or "") if pattern else (text or "")

        metadata = {**(data.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
        for to in personalization.get("to") or []:
            provider.accept("sendgrid", {
                "to": to["email"], "subject": fill(personalization.get("subject") or data.get("subject", "")),
                "text": fill(content.get("text/plain", "")), "html": fill(content.get("text/html", "")),
                "metadata": metadata, "from": (data.get("from") or {}).get("email", ""),
                "tags": data.get("categories") or [], "message_id": message_id,
            })
    return 202, None, {"X-Message-Id": message_id}


def amazon_ses(provider: Provider, path: str, headers: dict, body: bytes):
    if provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(403, {"message": "The security token included in the request is invalid."},
                      {"x-amzn-ErrorType": "UnrecognizedClientException"})
    data = json.loads(body)
    raw = base64.b64decode(data["Content"]["Raw"]["Data"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    to = [_addr_spec(a) for a in (data.get("Destination") or {}).get("ToAddresses") or str(parsed["To"] or "").split(",") if a.strip()]
    kinds = {_kind_of(a) for a in to}
    if "invalid" in kinds:
        provider.counters.refused += 1
        raise Refused(400, {"message": "Illegal address"}, {"x-amzn-ErrorType": "BadRequestException"})
    if "inactive" in kinds:
        provider.counters.refused += 1
        raise Refused(400, {"message": "Email address is on the account-level suppression list."},
                      {"x-amzn-ErrorType": "MessageRejected"})
    text = html = ""
    for part in parsed.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and not html:
            html = part.get_content()
    metadata = json.loads(str(parsed.get("X-Metadata") or "{}"))
    message_id = f"0100{uuid.uuid4().hex}-standin"
    for address in to:
        provider.accept("amazon_ses", {
            "to": address, "subject": str(parsed["Subject"] or ""), "text": text, "html": html,
            "metadata": metadata, "from": data.get("FromEmailAddress") or str(parsed["From"] or ""), "tags": [],
            "message_id": message_id,
        })
    return 200, {"MessageId": message_id}, {}


ROUTES = [
    (re.compile(r"^/email(/batch)?$"), "postmark", postmark),
    (re.compile(r"^/v3/[^/]+/messages$"), "mailgun", mailgun),
    (re.compile(r"^/v3/mail/send$"), "sendgrid", sendgrid),
    (re.compile(r"^/v2/email/outbound-emails$"), "amazon_ses", amazon_ses),
]


def _throttled(api: str, wait: float, send_header: bool):
    headers = {"Retry-After": str(max(1, math.ceil(wait)))} if send_header else {}
    if api == "postmark":
        return 429, {"ErrorCode": 429, "Message": "Rate limit exceeded. Slow down."}, headers
    if api == "mailgun":
        return 429, {"message": "Too many requests"}, headers
    if api == "sendgrid":
        return 429, {"errors": [{"field": None, "message": "too many requests"}]}, headers
    return 429, {"message": "Maximum sending rate exceeded."}, {**headers, "x-amzn-ErrorType": "TooManyRequestsException"}


def _unavailable(api: str, status: int):
    if api == "amazon_ses":
        return status, {"message": "Service is unavailable."}, {"x-amzn-ErrorType": "ServiceUnavailable" if status == 503 else "InternalFailure"}
    if api == "postmark":
        return status, {"ErrorCode": 0, "Message": "Service unavailable"}, {}
    return status, {"message": "Service temporarily unavailable"}, {}


# == the HTTP server ===============================================================================


class StandIn:
    """One stand-in server (one provider account for each API) on 127.0.0.1."""

    def __init__(self, port: int = 0, behaviour: Optional[Behaviour] = None):
        self.provider = Provider(behaviour)
        self.port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def anymail_settings(self, provider: str) -> dict[str, Any]:
        """The ANYMAIL settings that point anymail's real backend for `provider` here."""
        return anymail_settings(self.url, provider)

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

        self._thread = threading.Thread(target=serve, name="provider-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the provider stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            # Connections a client keeps alive end here, while the loop still runs.
            handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # -- as its own process (benchmarks) -----------------------------------------------------

    async def serve_forever(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        print(f"provider stand-in listening on {self.url}", flush=True)
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
                status, payload, extra = await self._respond(method, urllib.parse.urlsplit(target).path, headers, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}"]
                if payload is not None:
                    head.append("Content-Type: application/json")
                head += [f"{name}: {value}" for name, value in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # the client went away, or the stand-in is stopping
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, headers: dict, body: bytes):
        provider = self.provider
        if path.startswith("/_standin/"):
            return self._control(method, path, body)
        for pattern, api, handler in ROUTES:
            if pattern.match(path):
                break
        else:
            return 404, {"message": f"no such API: {path}"}, {}
        if method != "POST":
            return 405, {"message": "POST only"}, {}
        counters = provider.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            behaviour = provider.behaviour
            delay = behaviour.latency + (behaviour.jitter * ((counters.requests * 7919) % 1000) / 1000 if behaviour.jitter else 0)
            if delay:
                await asyncio.sleep(delay)
            wait = provider.take_token()
            if wait is not None:
                counters.throttled += 1
                return _throttled(api, wait, behaviour.retry_after)
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                counters.failed_5xx += 1
                return _unavailable(api, behaviour.fail_status)
            try:
                return handler(provider, path, headers, body)
            except Refused as refused:
                return refused.status, refused.body, refused.headers
        finally:
            counters.in_flight -= 1

    def _control(self, method: str, path: str, body: bytes):
        provider = self.provider
        if path == "/_standin/stats":
            return 200, {**provider.counters.as_dict(), "behaviour": asdict(provider.behaviour)}, {}
        if path == "/_standin/messages":
            return 200, provider.messages, {}
        if path == "/_standin/reset" and method == "POST":
            provider.reset()
            if body:
                provider.configure({**asdict(Behaviour()), **json.loads(body)})
            return 200, {"ok": True}, {}
        if path == "/_standin/config" and method == "POST":
            try:
                provider.configure(json.loads(body or b"{}"))
            except ValueError as exc:
                return 400, {"message": str(exc)}, {}
            return 200, asdict(provider.behaviour), {}
        return 404, {"message": "unknown control path"}, {}

    # -- the client side of the control API (tests, the benchmark) -----------------------------

    def stats(self) -> dict[str, Any]:
        return control(self.url, "stats")

    def accepted(self) -> list[dict[str, Any]]:
        return control(self.url, "messages")

    def configure(self, **changes: Any) -> None:
        control(self.url, "config", changes)

    def reset(self, **behaviour: Any) -> None:
        control(self.url, "reset", behaviour)


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def control(url: str, what: str, data: Optional[dict] = None) -> Any:
    request = urllib.request.Request(
        f"{url}/_standin/{what}", data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def anymail_settings(url: str, provider: str) -> dict[str, Any]:
    """Django settings (EMAIL_BACKEND and ANYMAIL) that send through anymail's real `provider`
    backend to the stand-in at `url`."""
    common = {"REQUESTS_TIMEOUT": 30}
    per_provider = {
        "postmark": {"POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN, "POSTMARK_API_URL": f"{url}/"},
        "mailgun": {"MAILGUN_API_KEY": MAILGUN_KEY, "MAILGUN_API_URL": f"{url}/v3", "MAILGUN_SENDER_DOMAIN": MAILGUN_DOMAIN},
        "sendgrid": {"SENDGRID_API_KEY": SENDGRID_KEY, "SENDGRID_API_URL": f"{url}/v3/"},
        "amazon_ses": {
            "AMAZON_SES_CLIENT_PARAMS": {
                "endpoint_url": url, "region_name": "us-east-1",
                "aws_access_key_id": "standin", "aws_secret_access_key": "standin",
                # What portal_project.settings gives boto3 when EMAIL_PROVIDER=amazon_ses.
                "config": {"connect_timeout": 10, "read_timeout": 30, "retries": {"mode": "standard", "total_max_attempts": 1}},
            },
        },
    }
    return {"EMAIL_BACKEND": f"anymail.backends.{provider}.EmailBackend", "ANYMAIL": {**common, **per_provider[provider]}}


def anymail_environment(url: str, provider: str) -> dict[str, str]:
    """The same as environment variables, for a worker process (settings read ANYMAIL_* and
    EMAIL_PROVIDER from the environment)."""
    configured = anymail_settings(url, provider)["ANYMAIL"]
    # A production configuration needs the tracking webhooks' secret next to a provider.
    env = {"EMAIL_PROVIDER": provider, "ANYMAIL_WEBHOOK_SECRET": "standin:webhook-secret"}
    for key, value in configured.items():
        env[f"ANYMAIL_{key}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description="A local stand-in for email providers' HTTP APIs.")
    parser.add_argument("--port", type=int, default=8025)
    for spec in fields(Behaviour):
        if spec.type in ("bool", bool):
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=lambda v: v.lower() in ("1", "true", "yes"), default=spec.default)
        else:
            parser.add_argument(f"--{spec.name.replace('_', '-')}", type=float if spec.type in ("float", float) else int, default=spec.default)
    args = parser.parse_args()
    behaviour = Behaviour(**{spec.name: getattr(args, spec.name) for spec in fields(Behaviour)})
    try:
        asyncio.run(StandIn(args.port, behaviour).serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
