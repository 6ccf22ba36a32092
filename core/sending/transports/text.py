"""Texts: the transports behind `core.sending.engine` for text messages, at most once each.

**Configuration** (settings from the environment; `portal_project/settings.py`):

* ``SMS_PROVIDER``: "" (the embedded default) writes each text as a readable file under
  ``VAR_DIR/texts/`` (to, from, time, segments, body), as emails are written under ``var/mail/``
  (`FileTransport`); "twilio" sends through Twilio's official library (`twilio.rest.Client`,
  `TwilioTransport`).
* ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``; the sender ``TWILIO_MESSAGING_SERVICE_SID``
  (preferred) or ``TWILIO_FROM_NUMBER`` (E.164); ``TWILIO_API_URL`` (https://api.twilio.com; the
  tests point it at `tests.twilio_standin`); ``TWILIO_TIMEOUT`` (seconds per API call).
* ``PORTAL_SMS_RATE_LIMIT`` / ``PORTAL_SMS_RATE_BURST``: the text account's rate (default 1 a second
  with Twilio: a US long code's), shared by every worker (``ratelimit.limiter("sms")``);
  ``PORTAL_SMS_CONCURRENCY``: calls in flight per bulk send (default 8).

With ``SMS_PROVIDER=twilio`` and a setting missing, web, worker and beat refuse to start (the
settings add it to ``PRODUCTION_CONFIG_ERRORS``); `TwilioTransport.open` raises
ImproperlyConfigured naming the variable, which the engine reports as a SERVICE error (sending
waits for ops; nobody's invitation fails for it).

An item's payload is a `Text` (its body and the status callback URL); its ``to`` an E.164 number
(`core.phones.normalise_phone`). The message id is Twilio's sid ("SM...") or "file-..." for files.
A call that may have reached Twilio without an answer is refused (``UNKNOWN_OUTCOME``), never tried
again (``at_most_once``): a patient gets a text at most once.

`for_many()` is a new transport for one bulk send (closed by the engine); `for_one()` the shared
one single texts use, so a worker's thread keeps its connection from one task to the next. Both
raise ImproperlyConfigured for an ``SMS_PROVIDER`` they do not know (the settings refuse to start
with one).
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ..text_segments import measure
from . import Item, Outcome, Transport


@dataclass(frozen=True)
class Text:
    """What a text says, and where Twilio reports its delivery."""

    body: str
    status_callback: str = ""  # absolute URL for Twilio's delivery statuses; "" = none


class _TextTransport(Transport):
    account = "sms"
    service = "text service"
    at_most_once = True

    def __init__(self):
        self.concurrency = max(1, settings.PORTAL_SMS_CONCURRENCY)


class FileTransport(_TextTransport):
    """The embedded default: each text a file under `folder`, written whole or not at all."""

    def __init__(self, folder: Path, sender: str):
        super().__init__()
        self.folder = Path(folder)
        self.sender = sender

    def send(self, item: Item) -> Outcome:
        text: Text = item.payload
        sid = f"file-{uuid.uuid4().hex}"
        now = timezone.now()
        size = measure(text.body)
        lines = [
            f"To: {item.to}",
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
        return Outcome(message_id=sid)


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    messaging_service_sid: str = ""
    from_number: str = ""
    api_url: str = "https://api.twilio.com"
    timeout: float = 15.0


class TwilioTransport(_TextTransport):
    """Twilio's Messages API through the official client, one client (and connection) per thread.

    The client is pointed at ``TWILIO_API_URL`` through ``client.api.base_url`` (the API domain's
    base, which every ``client.messages`` call is built on); `twilio.http.http_client
    .TwilioHttpClient` carries the timeout and makes no retries of its own. The settings are read
    by `open` (or given).
    """

    def __init__(self, config: TwilioConfig | None = None):
        super().__init__()
        self.config = config
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        if self.config is None:
            self.config = twilio_config()

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

    def send(self, item: Item) -> Outcome:
        text: Text = item.payload
        sender = (
            {"messaging_service_sid": self.config.messaging_service_sid}
            if self.config.messaging_service_sid
            else {"from_": self.config.from_number}
        )
        if text.status_callback:
            sender["status_callback"] = text.status_callback
        message = self.client().messages.create(to=item.to, body=text.body, **sender)
        return Outcome(message_id=str(message.sid))

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


def for_many() -> Transport:
    """A new transport for the configured provider, for one bulk send (the engine opens and
    closes it)."""
    provider = getattr(settings, "SMS_PROVIDER", "")
    if provider == "twilio":
        return TwilioTransport()
    if provider:
        raise ImproperlyConfigured(f'SMS_PROVIDER must be "twilio" or empty (texts written to files), not "{provider}".')
    sender = getattr(settings, "TWILIO_FROM_NUMBER", "") or "Practice Portal"
    return FileTransport(Path(settings.VAR_DIR) / "texts", sender)


@functools.lru_cache(maxsize=4)
def _shared_twilio(config: TwilioConfig) -> TwilioTransport:
    return TwilioTransport(config)


def for_one() -> Transport:
    """The transport for one text (`engine.send_one`): Twilio's is shared per configuration, so a
    worker's thread keeps its connection from one task to the next. A missing setting is raised
    by `open`, as for `for_many`."""
    if getattr(settings, "SMS_PROVIDER", "") == "twilio":
        try:
            return _shared_twilio(twilio_config())
        except ImproperlyConfigured:
            return TwilioTransport()  # its `open` names what is missing
    return for_many()
