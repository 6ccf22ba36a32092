"""The seam between the sending engine (`core.sending.engine`) and each channel's provider.

A channel is a `Transport`: how one message (or one provider batch) is handed over, and what the
channel promises. Everything else (the account's shared rate, deadlines, retries, the report) is
the engine's, written once for every channel. A new channel adds a transport, not an engine:

* `transports.email.EmailTransport`: Django's email connection (anymail's backends), one message
  per call or the provider's batch calls with per-recipient fields;
* `transports.text.TwilioTransport` (Twilio's official client) and `transports.text.FileTransport`
  (each text a file, without a provider).

What the engine moves around is an `Item`: the caller's key for the row (an invitation's primary
key), the recipient's address, and what the transport needs to write the message (`payload`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Optional

from ..errors import SendError, classify


@dataclass(eq=False)
class Item:
    """One message to send, and what the engine learned about it while sending."""

    key: Any  # the caller's id of the row (an invitation's primary key)
    to: str  # the address or number; one batch never carries an address twice (families share addresses)
    payload: Any = None  # what the transport needs to write this item's message
    group: Hashable = None  # only items of one group share a batch (e.g. the same expiry date)
    tries: int = 0  # calls that ended in a temporary error
    error: Optional[SendError] = None  # the last error this item met
    solo: bool = False  # its batch was refused: it goes alone, so the refusal finds its address


@dataclass
class Outcome:
    """What became of one message: the provider's id for it, or why not."""

    message_id: Optional[str] = None
    error: Optional[SendError] = None

    @property
    def sent(self) -> bool:
        return self.error is None


class Transport:
    """One channel's way to its provider. Subclasses set the class attributes and `send`."""

    #: The provider account whose shared rate every sender keeps to (`ratelimit.limiter(account)`).
    account: str = ""
    #: What staff and the logs call it ("email service", "text service").
    service: str = ""
    #: True: a call whose answer never came may have reached the recipient, so it is refused
    #: (``UNKNOWN_OUTCOME``), never tried again. False: tried again (at least once).
    at_most_once: bool = False
    #: Most items one call may carry; above 1 the transport implements `send_batch`.
    batch_limit: int = 1
    #: Calls in flight at once in one `engine.send_many`.
    concurrency: int = 1

    def open(self) -> None:
        """Check the configuration before anything is sent (raises ImproperlyConfigured)."""

    def send(self, item: Item) -> Outcome:
        """Hand one message over, in one call. Raises the provider's own errors."""
        raise NotImplementedError

    def send_batch(self, items: list[Item]) -> list[Outcome]:
        """Hand `items` over in one call, an outcome for each (in order). Raises the provider's
        own errors when the whole call failed."""
        raise NotImplementedError

    def classify(self, exc: BaseException) -> SendError:
        return classify(exc, at_most_once=self.at_most_once)

    def close(self) -> None:
        """Release the connections this transport opened (after an `engine.send_many`)."""
