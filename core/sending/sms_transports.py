"""Where a text goes: the transports behind `core.sending.sms`, and what a failed call means.

**Configuration** (settings from the environment; `portal_project/settings.py`):

* ``SMS_PROVIDER``: "" (the embedded default) writes each text as a readable file under
  ``VAR_DIR/texts/`` (to, from, time, segments, body), as emails are written under ``var/mail/``
  (`FileTransport`); "twilio" sends through Twilio's official library (`twilio.rest.Client`,
  `TwilioTransport`).
* ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``; the sender ``TWILIO_MESSAGING_SERVICE_SID``
  (preferred) or ``TWILIO_FROM_NUMBER`` (E.164); ``TWILIO_API_URL`` (https://api.twilio.com; the
  tests point it at `tests.twilio_standin`); ``TWILIO_TIMEOUT`` (seconds per API call).

`transport()` is a new transport for the configured provider (closed by its user), or
ImproperlyConfigured naming the missing variable (`twilio_config`); `single_transport()` the one a
single text uses. A transport's `send` raises the provider's own errors; `text_error` says what
one means for the text (`core.sending.errors.classify`, except that a call which may have reached
Twilio without an answer is never tried again).
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests
import urllib3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .errors import UNKNOWN_OUTCOME, ErrorKind, SendError, classify
from .sms_segments import measure

@dataclass(frozen=True)
class Text:
    """One text to send (`core.sending.sms` re-exports it for the app)."""

    key: Any  # the caller's id of the row (an invitation's primary key)
    to: str  # E.164
    body: str
    status_callback: str = ""  # absolute URL for Twilio's delivery statuses; "" = none


class Transport(Protocol):
    name: str

    def send(self, text: Text) -> str:
        """Hand one text over; the provider's id for it. Raises the provider's own errors."""

    def close(self) -> None:
        """Release connections (after a `send_texts`)."""


class FileTransport:
    """The embedded default: each text a file under `folder`, written whole or not at all."""

    name = "files"

    def __init__(self, folder: Path, sender: str):
        self.folder = Path(folder)
        self.sender = sender

    def send(self, text: Text) -> str:
        sid = f"file-{uuid.uuid4().hex}"
        now = timezone.now()
        size = measure(text.body)
        lines = [
            f"To: {text.to}",
            f"From: {self.sender}",
            f"Date: {now.isoformat(timespec='seconds')}",
            f"Id: {sid}",
            f"Segments: {size.segments} ({size.encoding}, {size.units} characters)",
        ]
        if text.status_callback:
            lines.append(f"Status-Callback: {text.status_callback}")
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{now:%Y%m%d-%H%M%S}-{sid}.txt"
        partial = path.with_suffix(".part")
        partial.write_text("\n".join(lines) + "\n\n" + text.body + "\n", encoding="utf-8")
        os.replace(partial, path)
        return sid

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    messaging_service_sid: str = ""
    from_number: str = ""
    api_url: str = "https://api.twilio.com"
    timeout: float = 15.0


class TwilioTransport:
    """Twilio's Messages API through the official client, one client (and connection) per thread.

    The client is pointed at ``TWILIO_API_URL`` through ``client.api.base_url`` (the API domain's
    base, which every ``client.messages`` call is built on); `twilio.http.http_client
    .TwilioHttpClient` carries the timeout and makes no retries of its own.
    """

    name = "twilio"

    def __init__(self, config: TwilioConfig):
        self.config = config
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(
                self.config.account_sid, self.config.auth_token,
                http_client=TwilioHttpClient(timeout=self.config.timeout),
            )
            client.api.base_url = self.config.api_url
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def send(self, text: Text) -> str:
        sender = (
            {"messaging_service_sid": self.config.messaging_service_sid}
            if self.config.messaging_service_sid
            else {"from_": self.config.from_number}
        )
        if text.status_callback:
            sender["status_callback"] = text.status_callback
        message = self.client().messages.create(to=text.to, body=text.body, **sender)
        return str(message.sid)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            session = getattr(client.http_client, "session", None)
            if session is not None:
                session.close()


def twilio_config() -> TwilioConfig:
    """The Twilio settings, or ImproperlyConfigured naming what is missing."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        if not getattr(settings, name, ""):
            raise ImproperlyConfigured(f"{name} must be set when SMS_PROVIDER is twilio.")
    service, number = settings.TWILIO_MESSAGING_SERVICE_SID, settings.TWILIO_FROM_NUMBER
    if not (service or number):
        raise ImproperlyConfigured(
            "TWILIO_MESSAGING_SERVICE_SID (MG...) or TWILIO_FROM_NUMBER (+1...) must be set when SMS_PROVIDER is twilio."
        )
    return TwilioConfig(
        account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN,
        messaging_service_sid=service, from_number=number,
        api_url=getattr(settings, "TWILIO_API_URL", "") or "https://api.twilio.com",
        timeout=float(getattr(settings, "TWILIO_TIMEOUT", 15.0) or 15.0),
    )


def transport() -> Transport:
    """A new transport for the configured provider (closed by its user)."""
    provider = getattr(settings, "SMS_PROVIDER", "")
    if provider == "twilio":
        return TwilioTransport(twilio_config())
    if provider:
        raise ImproperlyConfigured(f'SMS_PROVIDER must be "twilio" or empty (texts written to files), not "{provider}".')
    sender = getattr(settings, "TWILIO_FROM_NUMBER", "") or "Practice Portal"
    return FileTransport(Path(settings.VAR_DIR) / "texts", sender)


@functools.lru_cache(maxsize=4)
def _shared_twilio(config: TwilioConfig) -> TwilioTransport:
    """Single texts reuse one transport per configuration: each thread keeps its connection."""
    return TwilioTransport(config)


def single_transport() -> Transport:
    """The transport for one text (`send_text`): Twilio's is shared, so a worker's thread keeps
    its connection from one task to the next."""
    if getattr(settings, "SMS_PROVIDER", "") == "twilio":
        return _shared_twilio(twilio_config())
    return transport()


def text_error(exc: BaseException) -> SendError:
    """What a failed call means for a text. A call that may have reached Twilio without our
    hearing back (the answer timed out, the connection broke after the request went) is refused
    with ``UNKNOWN_OUTCOME`` instead of retried: sending it again could text the patient twice,
    and a text goes out at most once. A connection that never opened is temporary as usual."""
    if _maybe_sent(exc):
        return SendError(
            ErrorKind.REFUSED, "Twilio did not answer in time, so the text may or may not have been sent "
            f"({type(exc).__name__}). Resend to send a new link.", code=UNKNOWN_OUTCOME,
        )
    return classify(exc)


def _maybe_sent(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False  # the connection never opened
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        never_connected = isinstance(reason, urllib3.exceptions.MaxRetryError) and isinstance(
            reason.reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
        return not never_connected
    return False
