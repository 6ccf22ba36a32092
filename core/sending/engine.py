"""The sending engine: every message to a provider, email or text, goes through here, one at a
time (`send_one`) or many inside a deadline (`send_many`). The channel is a transport
(`core.sending.transports`); what follows holds for every channel alike.

**Many messages** (`send_many`, what a bulk run's chunk uses). The caller has claimed every item in
the database; the engine only talks to the provider and reports back through ``flush(Settled)``
(from the calling thread, every couple of seconds or hundred messages) so the caller marks rows as
they go:

* each unit (one message, or one provider batch of up to the transport's ``batch_limit``, never
  carrying an address twice) first reserves its slot in the account's shared rate (`ratelimit`),
  then goes to a pool thread (``concurrency`` of them) that waits for the slot and hands it over;
* a throttled unit (429) slows every sender of the account down (honouring Retry-After) and is
  tried again in place, as often as the deadline allows;
* a temporary failure is tried again after each wait of `RETRY_WAITS` (2 and 4 seconds, or what
  the provider asked for), then handed back with its error;
* a batch the provider refuses as a whole is split into single messages, so only the bad address
  fails; a refused message is settled as failed with the reason;
* a refusal of our account or configuration (SERVICE) stops the whole send at once.

**When sending stops.** No unit is started whose slot comes after the deadline (a
`time.monotonic()` value): sending stops there, and the wait for the account's next slot is
reported (``Report.slot_wait``). Units already waiting for a slot before the deadline still go:
the slot is booked and inside the caller's time. Anything else that stops the send (the Celery
soft time limit, a SERVICE refusal, an error such as the database going away) cancels the units
still waiting for their slot: they are not handed to the provider. Whatever was not handed over
(never tried, waiting for a slot or for a retry) is handed back untouched in ``Report.left``, with
the error each item last met, for the caller to release and hand on. Calls already in flight
finish and are settled and flushed (after an error, the flush is tried a few times) before an
error goes up.

**One message** (`send_one`: a single invitation, an alert, a test email): it waits at most
`max_wait` seconds for the account's slot (else THROTTLED, ``retry_after`` the wait, for the
caller's retry); a 429 slows every sender down and is returned THROTTLED, not retried here.

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
from typing import Any, Callable, Optional

from celery.exceptions import SoftTimeLimitExceeded

from . import ratelimit
from .errors import ErrorKind, SendError
from .transports import Item, Outcome, Transport

logger = logging.getLogger(__name__)

#: A 429 without Retry-After pauses the account this long.
DEFAULT_THROTTLE_PAUSE = 1.0
#: A message that met a temporary error is tried again after each of these waits (unless the
#: provider said how long), then handed back: three calls in all.
RETRY_WAITS = (2.0, 4.0)
#: Settled messages are flushed to the caller at least this often, or every this many messages.
FLUSH_EVERY_SECONDS = 2.0
FLUSH_EVERY_MESSAGES = 100
#: A unit of a batch costs a slot per recipient: at most this many seconds of the account's rate
#: per call, so one batch never books the account far ahead of everyone else.
MAX_BATCH_SECONDS = 10
#: A slot this close after the deadline still counts as before it (the rate store's clock and
#: ours are compared through an offset measured to a few milliseconds).
CLOCK_TOLERANCE = 0.05


@dataclass
class Settled:
    """What was settled since the last flush."""

    sent: list[tuple[Any, str]]  # (key, the provider's message id)
    failed: list[tuple[Any, SendError]]  # (key, why: .detail for staff, .code for the app)
    waiting: int  # items that met an error and wait here to be tried again
    #: The send's last flush (everything is settled or handed back): a caller that records some of
    #: its figures less often than every flush brings them up to date here.
    final: bool = False


@dataclass
class Report:
    """The whole of one `send_many`."""

    sent: int = 0
    failed: int = 0
    #: Not sent and not failed, each with the last error it met (None: never tried): the deadline
    #: came, sending was stopped, or temporary errors outlasted the retries here.
    left: list[Item] = field(default_factory=list)
    #: The provider refused our account or configuration: everything left waits for ops.
    service_error: Optional[SendError] = None
    #: Sending stopped for time (the deadline or the soft time limit), not because all was done.
    deadline_reached: bool = False
    #: When sending stopped because the account's next slot came after the deadline: how far
    #: away it was (seconds), so the caller waits that long instead of asking again at once.
    slot_wait: Optional[float] = None
    throttled: int = 0  # calls answered 429
    calls: int = 0  # calls made


# == one message ==================================================================================


def send_one(item: Item, *, via: Transport, max_wait: float = 30.0, limiter: Optional[ratelimit.RateLimiter] = None) -> Outcome:
    """Send one message within the account's shared rate; classify what went wrong (module
    docstring). The transport is the caller's (not closed here)."""
    limiter = limiter or ratelimit.limiter(via.account)
    try:
        via.open()
    except Exception as exc:  # noqa: BLE001 - a configuration we cannot send with: a SERVICE error
        return Outcome(error=via.classify(exc))
    wait = limiter.reserve(1, max_wait=max_wait)
    if wait is None:
        retry_after = limiter.last_refused_wait if limiter.last_refused_wait is not None else max_wait
        message = f"Waiting for the {via.service}'s sending rate."
        return Outcome(error=SendError(ErrorKind.THROTTLED, message, retry_after=retry_after))
    if wait > 0:
        time.sleep(wait)
    try:
        return via.send(item)
    except SoftTimeLimitExceeded:
        raise  # the task's time is up; whether the message left is unknown: never a send error
    except Exception as exc:  # noqa: BLE001 - classified, never swallowed
        error = via.classify(exc)
        if error.kind is ErrorKind.THROTTLED:
            limiter.slow_down(_pause(error))
        return Outcome(error=error)


def _pause(error: SendError) -> float:
    return error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE


# == many messages ================================================================================


def send_many(
    items: list[Item],
    *,
    via: Transport,
    deadline: float,
    flush: Optional[Callable[[Settled], None]] = None,
    limiter: Optional[ratelimit.RateLimiter] = None,
    concurrency: Optional[int] = None,
    flush_every_seconds: float = FLUSH_EVERY_SECONDS,
    flush_every_messages: int = FLUSH_EVERY_MESSAGES,
) -> Report:
    """Send `items` through `via` until done or until `deadline` (a `time.monotonic()` value);
    call `flush` with what was settled as it goes. Returns the whole send and what is left
    (module docstring). `concurrency`: calls in flight at once (default: the transport's). The
    transport is opened here and closed at the end."""
    if not items:
        return Report()
    try:
        via.open()
    except Exception as exc:  # noqa: BLE001 - a configuration we cannot send with: a SERVICE error
        return Report(left=list(items), service_error=via.classify(exc))
    run = _Run(
        items, via=via, limiter=limiter or ratelimit.limiter(via.account), deadline=deadline, flush=flush,
        concurrency=max(1, concurrency or via.concurrency), flush_every_seconds=flush_every_seconds, flush_every_messages=flush_every_messages,
    )
    try:
        run.loop()
    except SoftTimeLimitExceeded:
        # The task's soft time limit (the deadline should come first): units waiting for their
        # slot are not sent, the calls in flight finish, the rest is handed back. Never a send error.
        logger.warning("soft time limit reached while sending to the %s; handing the rest on", via.service)
        run.cancel(deadline=True)
        run.loop()
    except BaseException:
        # Anything else (the rate store or the database unreachable, a bug): messages already in
        # flight still go out, so their results are recorded before the error goes up; otherwise
        # their claims would lapse and they would be sent again.
        run.cancel()
        run.drain_and_record()
        raise
    finally:
        run.close()
    return run.report


#: What a pool thread returns for a unit whose slot it never used (the send was stopped).
_NOT_STARTED = object()


class _Run:
    """One `send_many`: the queues, the pool and the bookkeeping (calling thread only)."""

    def __init__(self, items, *, via, limiter, deadline, flush, concurrency, flush_every_seconds, flush_every_messages):
        self.via = via
        self.concurrency = concurrency
        self.limiter = limiter
        self.deadline = deadline
        self.flush_callback = flush
        self.flush_every_seconds = flush_every_seconds
        self.flush_every_messages = flush_every_messages
        self.report = Report()
        self.ready: collections.deque[Item] = collections.deque(items)
        self.delayed: list[tuple[float, int, Item]] = []  # (not before, tie-break, item)
        self._tie = itertools.count()
        self.in_flight: dict[concurrent.futures.Future, list[Item]] = {}
        self._settled: set[concurrent.futures.Future] = set()
        self.stopping = False
        #: Set when sending is cancelled: units waiting for their slot in a pool thread do not go.
        self.cancelled = threading.Event()
        self.sent: list[tuple[Any, str]] = []
        self.failed: list[tuple[Any, SendError]] = []
        self.last_flush = time.monotonic()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=via.account)
        self.batch_limit = via.batch_limit
        if limiter.configured:
            self.batch_limit = max(1, min(self.batch_limit, int(limiter.configured * MAX_BATCH_SECONDS)))

    def stop(self, *, deadline: bool = False) -> None:
        """Start nothing more; units already waiting for a slot before the deadline still go."""
        self.stopping = True
        self.report.deadline_reached = self.report.deadline_reached or deadline

    def cancel(self, *, deadline: bool = False) -> None:
        """Start nothing more, and units waiting for their slot do not go either."""
        self.stop(deadline=deadline)
        self.cancelled.set()

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

    def _dispatch(self) -> None:
        while not self.stopping and len(self.in_flight) < self.concurrency:
            unit = self._take_unit()
            if not unit:
                return
            try:
                max_wait = self.deadline - time.monotonic()
                slot = None if max_wait <= 0 else self.limiter.reserve_slot(len(unit), max_wait=max_wait)
                if slot is None:  # the slot would come after the deadline: nothing more starts
                    self.report.slot_wait = self.limiter.last_refused_wait if max_wait > 0 else None
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

    def _settle_future(self, future: concurrent.futures.Future) -> None:
        # The unit leaves `in_flight` only once settled: an interruption in between (the soft
        # time limit) leaves it there for the drain to settle, never in no list at all.
        if future not in self._settled:
            self._settle(self.in_flight[future], *future.result())
            self._settled.add(future)
        self.in_flight.pop(future, None)

    def _settle(self, unit: list[Item], outcomes: Any, exc: Optional[BaseException]) -> None:
        if outcomes is _NOT_STARTED:
            self.ready.extendleft(reversed(unit))  # untouched: handed back as it was
            return
        self.report.calls += 1
        if exc is None:
            for item, outcome in zip(unit, outcomes):
                if outcome.sent:
                    self.sent.append((item.key, outcome.message_id or ""))
                else:
                    self.failed.append((item.key, outcome.error))
            return
        error = self.via.classify(exc)
        if error.kind is ErrorKind.REFUSED and len(unit) > 1:
            for item in unit:  # find the address the provider refused: each goes alone
                item.solo = True
            self.ready.extendleft(reversed(unit))
            return
        if error.kind is ErrorKind.REFUSED:
            self.failed.append((unit[0].key, error))
            return
        for item in unit:
            item.error = error
        if error.kind is ErrorKind.THROTTLED:
            self.report.throttled += 1
            pause = _pause(error)
            self.limiter.slow_down(pause)
            for item in unit:
                self._delay(item, pause)
        elif error.kind is ErrorKind.SERVICE:
            if self.report.service_error is None:
                logger.warning("the %s refused our account or configuration: %s", self.via.service, error.detail)
                self.report.service_error = error
            self.ready.extendleft(reversed(unit))
            self.cancel()
        else:
            for item in unit:
                item.tries += 1
                if item.tries > len(RETRY_WAITS):
                    self.report.left.append(item)
                else:
                    self._delay(item, error.retry_after or RETRY_WAITS[item.tries - 1])

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
                logger.warning("could not record what the %s took; trying again", self.via.service, exc_info=True)

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
        return max(self.flush_every_seconds - (time.monotonic() - self.last_flush), 0.0)

    def _maybe_flush(self) -> None:
        due = len(self.sent) + len(self.failed) >= self.flush_every_messages
        if due or (self.sent or self.failed) and self._until_flush() == 0:
            self._flush()

    def _waiting(self) -> int:
        queued = itertools.chain(self.ready, (item for _, _, item in self.delayed), *self.in_flight.values())
        return sum(1 for item in queued if item.error is not None)

    def _flush(self, force: bool = False) -> None:
        if not (self.sent or self.failed or force):
            return
        settled = Settled(sent=self.sent, failed=self.failed, waiting=self._waiting(), final=force)
        if self.flush_callback is not None:
            self.flush_callback(settled)  # cleared only once the caller recorded them
        self.report.sent += len(settled.sent)
        self.report.failed += len(settled.failed)
        self.sent, self.failed = [], []
        self.last_flush = time.monotonic()

    # -- pool threads -----------------------------------------------------------------------------

    def _send_unit(self, unit: list[Item], start_at: float):
        # Wake at the slot, or at the deadline if the slot lies beyond it (the rate store's clock
        # can move a slot across it): a unit whose slot is after the deadline does not go.
        latest = self.deadline + CLOCK_TOLERANCE
        delay = min(start_at, latest) - time.monotonic()
        if delay > 0:
            self.cancelled.wait(delay)
        if self.cancelled.is_set() or start_at > latest:
            return _NOT_STARTED, None
        try:
            outcomes = [self.via.send(unit[0])] if len(unit) == 1 else self.via.send_batch(unit)
        except Exception as exc:  # noqa: BLE001 - classified by the calling thread
            return None, exc
        return outcomes, None

    def close(self) -> None:
        self.cancelled.set()
        self.pool.shutdown(wait=True)
        try:
            self.via.close()
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - closing a broken connection is not an error
            logger.debug("closing the %s transport failed", self.via.service, exc_info=True)
