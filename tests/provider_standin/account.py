"""One provider account as the stand-in keeps it: how it behaves, its token bucket, its counters
and the messages it accepted; and the recipient rules every API shares."""

from __future__ import annotations

import email.utils
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from tests.standin_http import FixedWindow, TokenBucket


@dataclass
class Behaviour:
    """How the provider behaves; every field can be changed while it runs."""

    latency: float = 0.0  # seconds before each answer
    jitter: float = 0.0  # up to this many seconds more, spread evenly
    rate_limit: float = 0.0  # requests per second the account may make; 0 = no limit
    burst: float = 0.0  # token bucket size; 0 = one second's worth (at least 1)
    #: Count the limit strictly in each whole second (at most `rate_limit` requests in one) instead of
    #: a token bucket, as some providers do.
    strict_window: bool = False
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


def kind_of(address: str) -> str:
    """What a provider makes of an address, by its local part: invalid, inactive (bounced before) or ok."""
    local = address.split("@", 1)[0].lower()
    if local.startswith("invalid") or "@" not in address:
        return "invalid"
    if local.startswith("inactive"):
        return "inactive"
    return "ok"


def addr_spec(value: str) -> str:
    return email.utils.parseaddr(value)[1] or value.strip()


class Provider:
    """The state of one provider account: behaviour, token bucket, counters, accepted messages."""

    def __init__(self, behaviour: Optional[Behaviour] = None):
        self.behaviour = behaviour or Behaviour()
        self.counters = Counters()
        self.messages: list[dict[str, Any]] = []
        self._bucket = TokenBucket()
        self._window = FixedWindow()

    def reset(self) -> None:
        self.counters = Counters()
        self.messages = []
        self._bucket.reset()
        self._window.reset()

    def configure(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(Behaviour)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown behaviour fields: {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self.behaviour, name, value)
        self._bucket.reset()
        self._window.reset()

    # -- the token bucket ------------------------------------------------------------------

    def take_token(self) -> Optional[float]:
        """None if the request may go; else the seconds until a token is free."""
        rate = self.behaviour.rate_limit
        if self.behaviour.strict_window:
            return self._window.take(rate)
        return self._bucket.take(rate, self.behaviour.burst or max(rate, 1.0))

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
