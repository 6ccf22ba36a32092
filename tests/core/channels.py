"""Both channels of the sending engine as the tests drive them, one interface for the two: items
to send, the transport, the account's rate, the stand-in behind the real client library (anymail's
Postmark backend to tests/provider_standin, the twilio client to tests/twilio_standin) and what it
received. A test written once against `Channel` runs for emails and texts alike (test_engine.py)."""

from __future__ import annotations

import time
import warnings
from typing import Any

from django.core.mail import EmailMultiAlternatives

from core.sending import engine
from core.sending.ratelimit import make as rate_limiter
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from core.sending.transports import text as text_transport
from tests import twilio_standin

FROM = "Maple Dental <portal@mg.portal.example>"
BODY = "Maple Dental invites you to its patient portal: https://portal.example.test/r/AbC123"


class Composer:
    """Each item's email carries its own secret, so a test can see who got whose."""

    def message(self, item: Item) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives("Your invitation", f"Hi {item.payload}, link /r/{item.key}", FROM, [item.to])
        message.attach_alternative(f"<p>Hi {item.payload}, <a href='/r/{item.key}'>link</a></p>", "text/html")
        message.metadata = {"invitation": str(item.key)}
        return message

    def batch(self, items: list[Item], merge) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            "Your invitation", f"Hi {merge.field('name')}, link /r/{merge.field('key')}", FROM, [i.to for i in items]
        )
        message.attach_alternative(f"<p>Hi {merge.field('name')}</p>", "text/html")
        message.merge_data = {i.to: {merge.key("name"): i.payload, merge.key("key"): str(i.key)} for i in items}
        message.merge_metadata = {i.to: {"invitation": str(i.key)} for i in items}
        return message


def emails(n: int, *, domain: str = "example.com", start: int = 0) -> list[Item]:
    return [Item(key=start + i, to=f"p{start + i}@{domain}", payload=f"Pat{start + i}") for i in range(n)]


def text_items(n: int, *, start: int = 0, callback: str = "") -> list[Item]:
    return [
        Item(key=start + i, to=f"+1617555{start + i:04d}", payload=text_transport.Text(BODY, status_callback=callback))
        for i in range(n)
    ]


def no_rate(account: str = "sms"):
    return rate_limiter(account, rate=0)


class Recorder:
    """The `flush` callback: keeps every `Settled` it is given."""

    def __init__(self):
        self.flushes: list[engine.Settled] = []

    def __call__(self, settled: engine.Settled) -> None:
        self.flushes.append(settled)

    @property
    def sent(self) -> list:
        return sorted(key for f in self.flushes for key, _ in f.sent)

    @property
    def failed(self) -> dict:
        return {key: error for f in self.flushes for key, error in f.failed}


def send_many(items, *, via, deadline=30.0, concurrency=4, limiter=None, **kwargs):
    recorder = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anymail warns about the stand-in's plain http
        report = engine.send_many(
            items, via=via, deadline=time.monotonic() + deadline, flush=recorder,
            limiter=limiter or no_rate(via.account), concurrency=concurrency, **kwargs,
        )
    return report, recorder


class Channel:
    """One channel as the engine's tests see it."""

    name: str
    account: str
    refused_address: str  # an address the provider refuses for good

    def __init__(self, standin):
        self.standin = standin

    def items(self, n: int, *, start: int = 0) -> list[Item]:
        raise NotImplementedError

    def transport(self):
        raise NotImplementedError

    def single(self):
        """The transport for one message, and the item's form for it."""
        raise NotImplementedError

    def one(self, item: Item) -> Item:
        return item

    def limiter(self, rate: float = 0, **kwargs):
        return rate_limiter(self.account, rate=rate, **kwargs)

    def send(self, items, **kwargs):
        return send_many(items, via=self.transport(), limiter=kwargs.pop("limiter", None) or self.limiter(), **kwargs)

    def configure(self, **behaviour: Any) -> None:
        """latency, rate_limit, burst, fail_next, fail_status, auth_fail: the same on both stand-ins."""
        self.standin.configure(**behaviour)

    def stats(self) -> dict:
        return self.standin.stats()

    def taken(self) -> int:
        """Messages the provider took."""
        raise NotImplementedError

    def twice(self) -> int:
        """Recipients who got two messages."""
        raise NotImplementedError

    def accepted_keys(self) -> list:
        """The keys of the items the provider took, in order."""
        raise NotImplementedError


class EmailChannel(Channel):
    name = account = "email"
    refused_address = "invalid-typo@example.com"

    def items(self, n, *, start=0):
        return emails(n, start=start)

    def transport(self):
        return email_transport.for_many(Composer())

    def single(self):
        return email_transport.for_one()

    def one(self, item):
        return Item(key=item.key, to=item.to, payload=Composer().message(item))

    def taken(self):
        return self.stats()["messages"]

    def twice(self):
        return self.stats()["recipients_emailed_twice"]

    def accepted_keys(self):
        return sorted(int(message["metadata"]["invitation"]) for message in self.standin.accepted())


class TextChannel(Channel):
    name = "text"
    account = "sms"
    refused_address = twilio_standin.INVALID_NUMBER

    def items(self, n, *, start=0):
        return text_items(n, start=start)

    def transport(self):
        return text_transport.for_many()

    def single(self):
        return text_transport.for_one()

    def taken(self):
        return self.stats()["accepted"]

    def twice(self):
        return self.stats()["recipients_texted_twice"]

    def accepted_keys(self):
        return sorted(int(message["to"][-4:]) for message in self.standin.accepted())
