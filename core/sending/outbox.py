"""Handing messages to the provider: one at a time (`send_one`), or many inside a deadline
(`Outbox.send`) through a bounded pool of connections or the provider's batch calls.

`Outbox.send` is what a bulk run's chunk uses. The caller has already claimed every item in the
database; the outbox only talks to the provider and reports back through `flush` (from the calling
thread, every couple of seconds or hundred messages) so the caller can mark rows as they go:

* each unit (one message, or one batch of up to the provider's limit) first reserves its slot in
  the account's shared rate (`ratelimit`), then goes to a pool thread that waits for the slot and
  sends it over its own connection;
* a throttled unit (429) slows every sender of the account down (honouring Retry-After) and is
  tried again in place, as often as the deadline allows; a temporary failure is tried again after
  2 and 4 seconds, then handed back; a batch the provider refuses is split into single messages so
  only the bad addresses fail; a refusal of our account or configuration stops the whole send;
* no unit starts after the deadline: what is left is handed back untouched (`Report.left`), with the
  error each item last met, for the caller to release and hand on.

Pool threads never touch the database; the calling thread does all the bookkeeping.
"""

from __future__ import annotations

import collections
import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional, Protocol

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from . import ratelimit
from .transports import email_providers as providers
from .errors import ErrorKind, SendError, classify, describe

logger = logging.getLogger(__name__)

#: A 429 without Retry-After pauses the account this long.
DEFAULT_THROTTLE_PAUSE = 1.0
#: Temporary failures of one item within one `send` before it is handed back.
MAX_TRIES = 3
#: Recipient statuses (anymail's) that mean the provider took the call but not this address.
REFUSED_STATUSES = {"rejected", "invalid", "failed"}


@dataclass(eq=False)
class Item:
    key: Any  # the caller's id of the row (an invitation's primary key)
    to: str  # the address; one batch never carries an address twice (families share addresses)
    payload: Any = None  # what the composer needs to write this item's message
    group: Hashable = None  # only items of one group share a batch (e.g. the same expiry date)
    tries: int = 0
    error: Optional[SendError] = None  # the last error this item met
    solo: bool = False  # its batch was refused: it goes alone, so the refusal finds its address


class Composer(Protocol):
    def message(self, item: Item) -> EmailMessage:
        """The message for one item."""

    def batch(self, items: list[Item], merge: providers.MergeSyntax) -> Optional[EmailMessage]:
        """One message carrying every item, with per-recipient fields written for `merge`, or
        None where this kind of message has no batch form."""


@dataclass
class Flush:
    sent: list[tuple[Any, str]]  # (key, the provider's message id)
    failed: list[tuple[Any, str]]  # (key, why: safe to store and show staff)
    waiting: int  # items that met an error and wait to be tried again


@dataclass
class Report:
    sent: int = 0
    failed: int = 0
    #: Not sent and not failed: the deadline came first, or errors outlasted the retries here.
    left: list[Item] = field(default_factory=list)
    #: The provider refused our account or configuration: everything left waits for ops.
    service_error: Optional[SendError] = None
    deadline_reached: bool = False
    #: When sending stopped because the account's next slot came after the deadline: how far
    #: away it was (seconds), so the caller waits that long instead of asking again at once.
    slot_wait: Optional[float] = None
    throttled: int = 0
    calls: int = 0


class Outbox:
    def __init__(
        self,
        *,
        composer: Composer,
        limiter: Optional[ratelimit.RateLimiter] = None,
        provider: Optional[providers.Provider] = None,
        concurrency: Optional[int] = None,
        flush_every_seconds: float = 2.0,
        flush_every_messages: int = 100,
    ):
        self.composer = composer
        self.limiter = limiter or ratelimit.limiter("email")
        self.provider = provider or providers.current()
        self.concurrency = max(1, concurrency or settings.PORTAL_SEND_CONCURRENCY)
        self.flush_every_seconds = flush_every_seconds
        self.flush_every_messages = flush_every_messages

    def send(self, items: list[Item], *, deadline: float, flush: Callable[[Flush], None]) -> Report:
        """Send `items` until done or until `deadline` (a `time.monotonic()` value) comes; call
        `flush` with what was settled as it goes. Returns what happened and what is left."""
        run = _Run(self, items, deadline, flush)
        try:
            run.loop()
        except SoftTimeLimitExceeded:
            # The task's soft time limit (the deadline should come first): stop starting sends,
            # let the ones in flight finish, and hand the rest back. Never a send error.
            logger.warning("soft time limit reached while sending; handing the rest on")
            run.stop(deadline=True)
            run.loop()
        except BaseException:
            # Anything else (the rate store or the database unreachable, a bug): emails already in
            # flight still go out, so their results are recorded before the error goes up;
            # otherwise their claims would lapse and they would be sent again.
            run.stop()
            run.drain_and_record()
            raise
        finally:
            run.close()
        return run.report


class _Run:
    """One `Outbox.send`: the queues, the pool and the bookkeeping (calling thread only)."""

    def __init__(self, outbox: Outbox, items: list[Item], deadline: float, flush: Callable[[Flush], None]):
        self.outbox = outbox
        self.deadline = deadline
        self.flush_callback = flush
        self.report = Report()
        self.ready: collections.deque[Item] = collections.deque(items)
        self.delayed: list[tuple[float, int, Item]] = []  # (not before, tie-break, item)
        self._tie = itertools.count()
        self.in_flight: dict[concurrent.futures.Future, list[Item]] = {}
        self._settled: set[concurrent.futures.Future] = set()
        self.stopping = False
        self.sent: list[tuple[Any, str]] = []
        self.failed: list[tuple[Any, str]] = []
        self.last_flush = time.monotonic()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=outbox.concurrency, thread_name_prefix="outbox")
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        provider = outbox.provider
        self.batch_limit = provider.batch_limit if provider.batches else 1
        if outbox.limiter.configured:
            # A batch costs a slot per recipient: at most ten seconds of the account's rate per call,
            # so one batch never books the account far ahead of everyone else.
            self.batch_limit = max(1, min(self.batch_limit, int(outbox.limiter.configured * 10)))

    # -- the loop (calling thread) ------------------------------------------------------------

    def loop(self) -> None:
        while True:
            self._dispatch()
            if not self.in_flight:
                if self.stopping or (not self.ready and not self.delayed):
                    break
                if not self.ready:  # only delayed items: wait for the first, unless past the deadline
                    first = self.delayed[0][0]
                    if first >= self.deadline:
                        self.stop(deadline=True)
                        continue
                    self._maybe_flush()
                    time.sleep(max(0.0, min(first - time.monotonic(), self._wait_timeout())))
                    self._release_due()
                    continue
            done, _ = concurrent.futures.wait(
                list(self.in_flight), timeout=self._wait_timeout(), return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                self._settle_future(future)
            self._release_due()
            self._maybe_flush()
        self._leave_the_rest()
        self._flush(force=True)

    def _settle_future(self, future: concurrent.futures.Future) -> None:
        # The unit leaves `in_flight` only once settled: an interruption in between (the soft
        # time limit) leaves it there for the drain to settle, never in no list at all.
        if future not in self._settled:
            self._settle(self.in_flight[future], *future.result())
            self._settled.add(future)
        self.in_flight.pop(future, None)

    def drain_and_record(self) -> None:
        """After an error: wait for the calls in flight, settle them and record what was sent,
        trying the record a few times (the error may have been the database's)."""
        try:
            for future in concurrent.futures.as_completed(list(self.in_flight)):
                self._settle_future(future)
        except BaseException:  # noqa: BLE001 - recording what we can matters more here
            logger.exception("could not settle the sends in flight")
        self._leave_the_rest()
        for delay in (0.0, 0.5, 1.0, 2.0):
            time.sleep(delay)
            try:
                self._flush(force=True)
                return
            except Exception:  # noqa: BLE001 - tried again, then given up (the claims lapse)
                logger.warning("could not record sent emails; trying again", exc_info=True)

    def stop(self, *, deadline: bool = False) -> None:
        self.stopping = True
        self.report.deadline_reached = self.report.deadline_reached or deadline

    def _dispatch(self) -> None:
        while not self.stopping and len(self.in_flight) < self.outbox.concurrency:
            unit = self._take_unit()
            if not unit:
                return
            try:
                max_wait = self.deadline - time.monotonic()
                slot = None if max_wait <= 0 else self.outbox.limiter.reserve_slot(len(unit), max_wait=max_wait)
                if slot is None:  # the slot would come after the deadline
                    self.report.slot_wait = self.outbox.limiter.last_refused_wait if max_wait > 0 else None
                    self.ready.extendleft(reversed(unit))
                    self.stop(deadline=True)
                    return
                start_at = time.monotonic() + (slot - time.time())
                self.in_flight[self.pool.submit(self._send_unit, unit, start_at)] = unit
            except BaseException:
                if not any(unit is queued for queued in self.in_flight.values()):
                    self.ready.extendleft(reversed(unit))  # taken but never sent: back in line
                raise

    def _take_unit(self) -> list[Item]:
        if not self.ready:
            return []
        first = self.ready.popleft()
        if self.batch_limit == 1 or first.solo:
            return [first]
        unit, addresses, passed = [first], {first.to.lower()}, []
        while self.ready and len(unit) < self.batch_limit:
            item = self.ready.popleft()
            if item.solo or item.group != first.group or item.to.lower() in addresses:
                passed.append(item)  # a second member of a family waits for the next batch
                continue
            unit.append(item)
            addresses.add(item.to.lower())
        self.ready.extendleft(reversed(passed))
        return unit

    def _settle(self, unit: list[Item], message: Optional[EmailMessage], exc: Optional[BaseException]) -> None:
        self.report.calls += 1
        if exc is None:
            self._accepted(unit, message)
            return
        error = SendError(ErrorKind.REFUSED, str(exc)) if isinstance(exc, _Unbuildable) else classify(exc)
        if error.kind is ErrorKind.REFUSED and len(unit) > 1:
            for item in unit:  # find the address the provider refused: each goes alone
                item.solo = True
            self.ready.extendleft(reversed(unit))
            return
        if error.kind is ErrorKind.REFUSED:
            self.failed.append((unit[0].key, error.detail))
            return
        for item in unit:
            item.error = error
        if error.kind is ErrorKind.THROTTLED:
            self.report.throttled += 1
            pause = error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE
            self.outbox.limiter.slow_down(pause)
            for item in unit:
                self._delay(item, pause)
        elif error.kind is ErrorKind.SERVICE:
            logger.warning("the email service refused our account or configuration: %s", error.detail)
            self.report.service_error = error
            self.ready.extendleft(reversed(unit))
            self.stop()
        else:
            for item in unit:
                item.tries += 1
                if item.tries >= MAX_TRIES:
                    self.report.left.append(item)
                else:
                    self._delay(item, error.retry_after or 2.0 ** item.tries)

    def _accepted(self, unit: list[Item], message: EmailMessage) -> None:
        status = getattr(message, "anymail_status", None)
        by_address = {address.lower(): value for address, value in (status.recipients if status else {}).items()}
        for item in unit:
            recipient = by_address.get(item.to.lower())
            if recipient is not None and recipient.status in REFUSED_STATUSES:
                self.failed.append((item.key, f"The email service refused this address ({recipient.status})."))
                continue
            message_id = recipient.message_id if recipient is not None else (status.message_id if status else None)
            self.sent.append((item.key, "" if message_id is None else str(message_id)))

    def _delay(self, item: Item, seconds: float) -> None:
        heapq.heappush(self.delayed, (time.monotonic() + seconds, next(self._tie), item))

    def _release_due(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            self.ready.append(heapq.heappop(self.delayed)[2])

    def _leave_the_rest(self) -> None:
        self.report.left.extend(self.ready)
        self.report.left.extend(item for _, _, item in self.delayed)
        self.ready.clear()
        self.delayed.clear()

    def _wait_timeout(self) -> float:
        timeout = min(0.5, self._until_flush()) if (self.sent or self.failed) else 0.5
        if self.delayed:
            timeout = min(timeout, self.delayed[0][0] - time.monotonic())
        return max(timeout, 0.0)

    def _until_flush(self) -> float:
        return max(self.outbox.flush_every_seconds - (time.monotonic() - self.last_flush), 0.0)

    def _maybe_flush(self) -> None:
        due = len(self.sent) + len(self.failed) >= self.outbox.flush_every_messages
        if due or (self.sent or self.failed) and self._until_flush() == 0:
            self._flush()

    def _waiting(self) -> int:
        queued = itertools.chain(self.ready, (item for _, _, item in self.delayed), *self.in_flight.values())
        return sum(1 for item in queued if item.error is not None)

    def _flush(self, force: bool = False) -> None:
        if not (self.sent or self.failed or force):
            return
        batch = Flush(sent=self.sent, failed=self.failed, waiting=self._waiting())
        self.flush_callback(batch)  # cleared only once the caller recorded them
        self.report.sent += len(batch.sent)
        self.report.failed += len(batch.failed)
        self.sent, self.failed = [], []
        self.last_flush = time.monotonic()

    # -- pool threads -----------------------------------------------------------------------------

    def _send_unit(self, unit: list[Item], start_at: float):
        delay = start_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            message = self._compose(unit)
        except Exception as exc:  # noqa: BLE001 - a message we cannot build is refused, not retried
            return None, _Unbuildable(describe(exc))
        prepare(message, self.outbox.provider)
        try:
            self._connection().send_messages([message])
        except Exception as exc:  # noqa: BLE001 - classified by the calling thread
            return None, exc
        return message, None

    def _compose(self, unit: list[Item]) -> EmailMessage:
        if len(unit) > 1:
            message = self.outbox.composer.batch(unit, self.outbox.provider.merge)
            if message is not None:
                return message
            raise RuntimeError("batch of a message that has no batch form")
        return self.outbox.composer.message(unit[0])

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
        self.pool.shutdown(wait=True)
        for connection in self._connections:
            try:
                connection.close()
            except SoftTimeLimitExceeded:
                raise
            except Exception:  # noqa: BLE001 - closing a broken connection is not an error
                pass


class _Unbuildable(ValueError):
    """The message could not be made (classified as refused: trying again builds it the same)."""


def prepare(message: EmailMessage, provider: Optional[providers.Provider] = None) -> EmailMessage:
    """What every message gets on its way out: no click tracking where the provider has it (it
    would route a patient's registration token through the provider's redirector)."""
    if (provider or providers.current()).accepts_track_clicks:
        message.track_clicks = False
    return message


@dataclass
class Outcome:
    message_id: Optional[str] = None
    error: Optional[SendError] = None

    @property
    def sent(self) -> bool:
        return self.error is None


def send_one(message: EmailMessage, *, limiter: Optional[ratelimit.RateLimiter] = None, max_wait: float = 30.0) -> Outcome:
    """Send one message within the account's shared rate and classify what went wrong.

    A throttled answer slows every sender down. When our own rate has no slot within `max_wait`
    seconds nothing is sent: the outcome is THROTTLED with that wait, for the caller's retry.
    """
    limiter = limiter or ratelimit.limiter("email")
    wait = limiter.reserve(1, max_wait=max_wait)
    if wait is None:
        return Outcome(error=SendError(ErrorKind.THROTTLED, "Waiting for the account's sending rate.", retry_after=max_wait))
    if wait > 0:
        time.sleep(wait)
    prepare(message)
    try:
        message.send()
    except SoftTimeLimitExceeded:
        raise  # the task's time is up; whether the email left is unknown: never a send error
    except Exception as exc:  # noqa: BLE001 - classified, never swallowed
        error = classify(exc)
        if error.kind is ErrorKind.THROTTLED:
            limiter.slow_down(error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE)
        return Outcome(error=error)
    status = getattr(message, "anymail_status", None)
    if status is not None and status.status and status.status <= REFUSED_STATUSES:
        return Outcome(error=SendError(ErrorKind.REFUSED, f"The email service refused this address ({', '.join(sorted(status.status))})."))
    message_id = status.message_id if status is not None else None
    return Outcome(message_id="" if message_id is None else str(message_id))
