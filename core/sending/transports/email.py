"""Emails: the transport behind `core.sending.engine` for Django's email connection (anymail's
backends in production; any Django backend works).

* One message per call: the item's message is the composer's (`Composer.message`), or the item's
  payload itself when there is no composer (`for_one`: a single invitation, an alert, a test email).
* Provider batches: where the provider fills per-recipient fields itself (Mailgun's
  ``recipient-variables``, SendGrid's personalizations; `email_providers`), one call carries up to
  the provider's batch size (``PORTAL_EMAIL_BATCH_SIZE``), written by `Composer.batch` with each
  recipient's own ``merge_data``; anymail's per-recipient status says which addresses were refused.
  A batch the provider refuses as a whole is split into single messages by the engine, so only the
  bad address fails.
* Every message goes out with click tracking off where the provider has it (`prepare`): it would
  route a patient's registration token through the provider's redirector.

`for_many` keeps one connection per pool thread for the whole send (closed by the engine);
`for_one` sends with Django's ``EmailMessage.send`` (a connection opened and closed per message).
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Protocol

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from ..errors import ErrorKind, SendError, Unbuildable, describe
from . import Item, Outcome, Transport, email_providers

#: Recipient statuses (anymail's) that mean the provider took the call but not this address.
REFUSED_STATUSES = {"rejected", "invalid", "failed"}


class Composer(Protocol):
    def message(self, item: Item) -> EmailMessage:
        """The message for one item."""

    def batch(self, items: list[Item], merge: email_providers.MergeSyntax) -> Optional[EmailMessage]:
        """One message carrying every item, with per-recipient fields written for `merge`, or
        None where this kind of message has no batch form."""


class EmailTransport(Transport):
    account = "email"
    service = "email service"

    def __init__(
        self, *, composer: Optional[Composer] = None, provider: Optional[email_providers.Provider] = None,
        keep_connections: bool = True,
    ):
        self.composer = composer
        self.provider = provider or email_providers.current()
        self.batch_limit = self.provider.batch_limit if (self.provider.batches and composer is not None) else 1
        self.concurrency = max(1, settings.PORTAL_SEND_CONCURRENCY)
        self.keep_connections = keep_connections
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def send(self, item: Item) -> Outcome:
        message = self._build(lambda: self.composer.message(item) if self.composer else item.payload)
        self._hand_over(message)
        return _Status(message).outcome(item)

    def send_batch(self, items: list[Item]) -> list[Outcome]:
        message = self._build(lambda: self.composer.batch(items, self.provider.merge))
        if message is None:
            raise Unbuildable("This kind of message has no batch form.")
        self._hand_over(message)
        status = _Status(message)
        return [status.outcome(item) for item in items]

    def _build(self, make) -> Optional[EmailMessage]:
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - a message we cannot build is refused, not retried
            raise Unbuildable(describe(exc)) from exc

    def _hand_over(self, message: EmailMessage) -> None:
        prepare(message, self.provider)
        if not self.keep_connections:
            message.send()  # opens and closes its own connection
            return
        self._connection().send_messages([message])

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = get_connection()
            connection.open()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.close()
            except SoftTimeLimitExceeded:
                raise
            except Exception:  # noqa: BLE001 - closing a broken connection is not an error
                pass


class _Status:
    """anymail's status of one call (Django's own backends have none: sent), read per recipient."""

    def __init__(self, message: EmailMessage):
        self.status = getattr(message, "anymail_status", None)
        recipients = self.status.recipients if self.status is not None else {}
        self.by_address = {address.lower(): value for address, value in recipients.items()}

    def outcome(self, item: Item) -> Outcome:
        if self.status is None:
            return Outcome(message_id="")
        recipient = self.by_address.get(item.to.lower()) if item.to else None
        statuses = {recipient.status} if recipient is not None else self.status.status
        if statuses and statuses <= REFUSED_STATUSES:
            why = ", ".join(sorted(statuses))
            return Outcome(error=SendError(ErrorKind.REFUSED, f"The email service refused this address ({why})."))
        message_id = recipient.message_id if recipient is not None else self.status.message_id
        return Outcome(message_id="" if message_id is None else str(message_id))


def prepare(message: EmailMessage, provider: Optional[email_providers.Provider] = None) -> EmailMessage:
    """What every message gets on its way out: no click tracking where the provider has it (it
    would route a patient's registration token through the provider's redirector)."""
    if (provider or email_providers.current()).accepts_track_clicks:
        message.track_clicks = False
    return message


def for_many(composer: Composer) -> EmailTransport:
    """The transport for a bulk send (`engine.send_many`): the composer writes each item's message
    or a batch; a connection per pool thread."""
    return EmailTransport(composer=composer)


def for_one() -> EmailTransport:
    """The transport for one ready message (`engine.send_one` with the message as the payload)."""
    return EmailTransport(keep_connections=False)
