"""The stand-in's Twilio account: its credentials and sender, Twilio's magic test numbers, how it
behaves (`TwilioBehaviour`), what it counts (`TwilioCounters`), and `Account`, which checks and accepts a
Messages.json POST as Twilio does or refuses it with Twilio's error (`TwilioError`); and Twilio's
own count of a text's segments."""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from tests.standin_http import TokenBucket

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


@dataclass
class TwilioBehaviour:
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
class TwilioCounters:
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


class Account:
    """The state of the Twilio account: behaviour, token bucket, counters, accepted texts."""

    def __init__(self, behaviour: Optional[TwilioBehaviour] = None):
        self.behaviour = behaviour or TwilioBehaviour()
        self.counters = TwilioCounters()
        self.messages: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self._bucket = TokenBucket()

    def reset(self) -> None:
        self.counters = TwilioCounters()
        self.messages, self.callbacks = [], []
        self._bucket.reset()

    def configure(self, changes: dict[str, Any]) -> None:
        unknown = set(changes) - {f.name for f in fields(TwilioBehaviour)}
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.behaviour, name, list(value) if name in ("unsubscribed", "landlines") else value)
        self._bucket.reset()

    def take_token(self) -> Optional[float]:
        """None if the message may go; else the seconds until a token is free."""
        rate = self.behaviour.rate_limit
        return self._bucket.take(rate, self.behaviour.burst or max(rate, 2.0))

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
            "num_media": "0", "num_segments": str(segments(body)), "price": None, "price_unit": "USD", "sid": sid,
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


# Twilio's own count of segments (GSM-7 160/153, else UCS-2 70/67), independent of the portal's.
_GSM7 = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
            "abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM7_EXTENDED = set("\f^{}\\[~]|€")


def segments(body: str) -> int:
    """How many segments Twilio bills `body` as (its ``num_segments``)."""
    if all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in body):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)
