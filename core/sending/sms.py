"""Text messages to the SMS provider: one text (`send_text`) or many inside a deadline
(`send_texts`), within the account's rate shared by every worker, with every error classified.

**Configuration** (settings from the environment; `portal_project/settings.py`):

* ``SMS_PROVIDER`` ("" writes each text as a file under ``VAR_DIR/texts/``, "twilio" sends through
  Twilio) and the ``TWILIO_*`` settings: where texts go, `core.sending.sms_transports`.
* ``PORTAL_SMS_RATE_LIMIT`` / ``PORTAL_SMS_RATE_BURST``: the account's rate in messages a second
  (default 1 with Twilio: a US long code's; none for files), shared by every worker through
  `account_rate()` (``ratelimit.limiter("sms")``). Twilio would queue texts sent faster, but
  then "sent" in our records would not be when the phone got it, and a long queue overflows
  (error 30001).
* ``PORTAL_SMS_CONCURRENCY``: calls in flight at once per `send_texts` (default 8).

With ``SMS_PROVIDER=twilio`` and a setting missing, web, worker and beat refuse to start (the
settings add it to ``PRODUCTION_CONFIG_ERRORS``); `transport()` raises ImproperlyConfigured
naming the variable, and the two send functions report it as a SERVICE error (sending waits for
ops, nobody's invitation fails for it).

**What the app calls**:

* ``Text(key, to, body, status_callback="")``: one text; `key` is the caller's id (an invitation's
  primary key), `to` an E.164 number (`core.phones.normalise_phone`), `status_callback` the
  absolute URL Twilio posts delivery statuses to (``settings.PORTAL_BASE_URL + reverse(...)``,
  verified there with `core.sending.sms_webhooks`).
* ``send_texts(texts, *, deadline, flush=None) -> Report``: what a bulk run's chunk uses. The
  caller has claimed every text's row already. `deadline` is a `time.monotonic()` value: no text
  starts after it. `flush(Settled)` is called from the calling thread every couple of seconds or
  hundred texts with what was settled since the last call (``sent`` [(key, sid)], ``refused``
  [(key, SendError)], ``waiting``), so the caller marks rows as they go. If anything raises
  (`flush` too), the calls in flight finish and what they sent is flushed (tried a few times)
  before the error goes up. The `Report` holds the
  whole send: ``sent``, ``refused``, ``left`` [(key, the last SendError or None)] for what was not
  sent (the deadline came, temporary errors outlasted the retries here, or the service stopped
  it: the caller releases and hands them on), ``service_error``, ``deadline_reached``,
  ``slot_wait`` (how far away the account's next slot was when nothing more could start).
* ``send_text(text, *, max_wait=5.0) -> Outcome``: one text (a request, a single invitation's
  task); waits at most `max_wait` seconds for the account's slot, else THROTTLED with
  ``retry_after``. ``Outcome.sid`` / ``Outcome.error``, ``Outcome.sent``.
* ``account_rate()``: the shared limiter (status pages: ``rate_in_force()``, ``paused_for()``);
  ``transport()``: the configured transport (raises ImproperlyConfigured), e.g. for a check.
* What a text costs (GSM-7 / UCS-2 segments; invitation texts are kept to one GSM-7 segment):
  `core.sending.sms_segments` (``is_gsm7``, ``non_gsm7``, ``measure``, ``segments``).

**Errors** (`core.sending.errors.classify`): REFUSED for this recipient, with ``SendError.code``
``invalid_number`` (21211), ``not_mobile`` (21614), ``opted_out`` (21610: the patient replied
STOP), ``cannot_route`` (21612, 21408) or ``refused``; THROTTLED (HTTP 429, 20429): every sender of
the account slows down (`RateLimiter.slow_down`) and the text is tried again in place, as long as
the deadline allows; TEMPORARY (5xx, timeouts, connection errors): tried again after 2 and 4 s,
then left (a timeout after Twilio took the text can send it twice: at least once, as for
emails); SERVICE (bad credentials 20003, bad sender 21212/21606/21659, unknown account or
messaging service 20404): the whole send stops at once, texts whose slot had not come are left
untried, and ``Report.service_error`` says why. A call that may have reached Twilio without an
answer (a read timeout, a connection lost after the request went) is REFUSED with ``code``
``unknown_outcome`` (`sms_transports.text_error`), never tried again: a text goes out at most once.

**Why not `outbox`**: the email engine is written around Django's email connections, anymail's
per-recipient status and batch calls; it has no seam for another transport, and subclassing its
private run would tie texts to its internals. This module is the same design, smaller (no
batches): the calling thread reserves each text's slot and does all bookkeeping, pool threads only
wait for their slot and call the transport. Giving `outbox` a transport seam would make them one.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import ratelimit
from .errors import ErrorKind, SendError, classify
from .sms_transports import Text, Transport, single_transport, text_error, transport

logger = logging.getLogger(__name__)

#: A 429 pauses the account this long (Twilio sends no Retry-After the library passes on).
DEFAULT_THROTTLE_PAUSE = 1.0
#: A text that met a temporary error is tried again after these waits (unless the provider said
#: how long), then left for later.
RETRY_WAITS = (2.0, 4.0)
#: Settled texts are flushed to the caller at least this often, or every this many texts.
FLUSH_EVERY_SECONDS = 2.0
FLUSH_EVERY_TEXTS = 100


@dataclass
class Outcome:
    sid: Optional[str] = None  # the provider's id of the text (Twilio's "SM..."; "file-..." for files)
    error: Optional[SendError] = None

    @property
    def sent(self) -> bool:
        return self.error is None


@dataclass
class Settled:
    """What `send_texts` settled since its last flush."""

    sent: list[tuple[Any, str]]  # (key, sid)
    refused: list[tuple[Any, SendError]]  # (key, why: SendError.code for the app, .detail for staff)
    waiting: int  # texts that met an error and wait here to be tried again


@dataclass
class Report:
    sent: list[tuple[Any, str]] = field(default_factory=list)
    refused: list[tuple[Any, SendError]] = field(default_factory=list)
    #: Not sent and not refused, with the last error each met (None: never tried).
    left: list[tuple[Any, Optional[SendError]]] = field(default_factory=list)
    #: The provider refused our account or configuration: everything left waits for ops.
    service_error: Optional[SendError] = None
    deadline_reached: bool = False
    #: When sending stopped because the account's next slot came after the deadline: how far
    #: away it was (seconds), so the caller waits that long instead of asking again at once.
    slot_wait: Optional[float] = None
    throttled: int = 0
    calls: int = 0


def account_rate() -> ratelimit.RateLimiter:
    """The text account's rate, shared by every worker (``PORTAL_SMS_RATE_LIMIT``)."""
    return ratelimit.limiter("sms")


# == one text =====================================================================================


def send_text(
    text: Text, *, max_wait: float = 5.0, limiter: Optional[ratelimit.RateLimiter] = None,
    via: Optional[Transport] = None,
) -> Outcome:
    """Send one text within the account's shared rate; classify what went wrong.

    When the account has no slot within `max_wait` seconds nothing is sent: the outcome is
    THROTTLED with ``retry_after`` set to that wait, for the caller's retry. A 429 slows every
    sender down and is returned THROTTLED (not retried here: a request must not wait on it).
    """
    limiter = limiter or account_rate()
    try:
        via = via or single_transport()
    except ImproperlyConfigured as exc:
        return Outcome(error=classify(exc))
    wait = limiter.reserve(1, max_wait=max_wait)
    if wait is None:
        retry_after = limiter.last_refused_wait if limiter.last_refused_wait is not None else max_wait
        waiting = SendError(ErrorKind.THROTTLED, "Waiting for the text account's sending rate.", retry_after=retry_after)
        return Outcome(error=waiting)
    if wait > 0:
        time.sleep(wait)
    try:
        sid = via.send(text)
    except SoftTimeLimitExceeded:
        raise  # the task's time is up; whether the text left is unknown: never a send error
    except Exception as exc:  # noqa: BLE001 - classified, never swallowed
        error = text_error(exc)
        if error.kind is ErrorKind.THROTTLED:
            limiter.slow_down(error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE)
        return Outcome(error=error)
    return Outcome(sid=sid)


# == many texts ===================================================================================


def send_texts(
    texts: list[Text],
    *,
    deadline: float,
    flush: Optional[Callable[[Settled], None]] = None,
    limiter: Optional[ratelimit.RateLimiter] = None,
    via: Optional[Transport] = None,
    concurrency: Optional[int] = None,
    flush_every_seconds: float = FLUSH_EVERY_SECONDS,
    flush_every_texts: int = FLUSH_EVERY_TEXTS,
) -> Report:
    """Send `texts` until done or until `deadline` (a `time.monotonic()` value); call `flush`
    with what was settled as it goes. Returns the whole send and what is left (module docstring)."""
    if not texts:
        return Report()
    owned = via is None
    try:
        via = via or transport()
    except ImproperlyConfigured as exc:
        error = classify(exc)
        return Report(left=[(text.key, error) for text in texts], service_error=error)
    run = _Run(
        texts, via=via, limiter=limiter or account_rate(), deadline=deadline, flush=flush,
        concurrency=max(1, concurrency or settings.PORTAL_SMS_CONCURRENCY),
        flush_every_seconds=flush_every_seconds, flush_every_texts=flush_every_texts,
    )
    try:
        run.loop()
    except SoftTimeLimitExceeded:
        # The task's soft time limit (the deadline should come first): texts whose slot has not
        # come stay unsent, the calls in flight finish, the rest is handed back. Never a send error.
        logger.warning("soft time limit reached while sending texts; handing the rest on")
        run.stop(deadline=True)
        run.loop()
    except BaseException:
        # Anything else (the rate store or the database unreachable, a bug): texts already in
        # flight still go out, so they are recorded before the error goes up.
        run.stop()
        run.drain_and_record()
        raise
    finally:
        run.close(transport=owned)
    return run.report


@dataclass(eq=False)
class _Pending:
    text: Text
    tries: int = 0
    error: Optional[SendError] = None


#: What a pool thread returns for a text whose slot it never used (the send was stopped).
_NOT_STARTED = object()


class _Run:
    """One `send_texts`: the queues, the pool and the bookkeeping (calling thread only)."""

    def __init__(self, texts, *, via, limiter, deadline, flush, concurrency, flush_every_seconds, flush_every_texts):
        self.via = via
        self.limiter = limiter
        self.deadline = deadline
        self.flush_callback = flush
        self.concurrency = concurrency
        self.flush_every_seconds = flush_every_seconds
        self.flush_every_texts = flush_every_texts
        self.report = Report()
        self.ready: deque[_Pending] = deque(_Pending(text) for text in texts)
        self.delayed: list[tuple[float, int, _Pending]] = []  # (not before, tie-break, text)
        self._tie = itertools.count()
        self.in_flight: dict[concurrent.futures.Future, _Pending] = {}
        self._settled: set[concurrent.futures.Future] = set()
        self.stopping = False
        #: Set when sending stops: texts waiting for their slot in a pool thread are not sent.
        self.cancelled = threading.Event()
        self.sent: list[tuple[Any, str]] = []
        self.refused: list[tuple[Any, SendError]] = []
        self.last_flush = time.monotonic()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sms")

    def stop(self, *, deadline: bool = False) -> None:
        self.stopping = True
        self.cancelled.set()
        self.report.deadline_reached = self.report.deadline_reached or deadline

    # -- the loop ---------------------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            self._dispatch()
            if not self.in_flight:
                if self.stopping or (not self.ready and not self.delayed):
                    break
                if not self.ready:  # only delayed texts: wait for the first, unless past the deadline
                    first = self.delayed[0][0]
                    if first >= self.deadline:
                        self.report.deadline_reached = True
                        self.stopping = True
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
        while not self.stopping and self.ready and len(self.in_flight) < self.concurrency:
            pending = self.ready.popleft()
            try:
                max_wait = self.deadline - time.monotonic()
                slot = None if max_wait <= 0 else self.limiter.reserve_slot(1, max_wait=max_wait)
                if slot is None:  # the slot would come after the deadline: nothing more starts
                    self.report.slot_wait = self.limiter.last_refused_wait if max_wait > 0 else None
                    self.ready.appendleft(pending)
                    self.report.deadline_reached = True
                    self.stopping = True  # texts already waiting for their slot still go
                    return
                start_at = time.monotonic() + (slot - time.time())
                self.in_flight[self.pool.submit(self._call, pending.text, start_at)] = pending
            except BaseException:
                if not any(pending is queued for queued in self.in_flight.values()):
                    self.ready.appendleft(pending)  # taken but never sent: back in line
                raise

    def _settle_future(self, future: concurrent.futures.Future) -> None:
        # The text leaves `in_flight` only once settled: an interruption in between (the soft
        # time limit) leaves it there for the drain to settle, never in no list at all.
        if future not in self._settled:
            self._settle(self.in_flight[future], *future.result())
            self._settled.add(future)
        self.in_flight.pop(future, None)

    def _settle(self, pending: _Pending, sid: Any, exc: Optional[BaseException]) -> None:
        if sid is _NOT_STARTED:
            self.ready.appendleft(pending)
            return
        self.report.calls += 1
        key = pending.text.key
        if exc is None:
            self.sent.append((key, sid))
            self.report.sent.append((key, sid))
            return
        error = text_error(exc)
        if error.kind is ErrorKind.REFUSED:
            self.refused.append((key, error))
            self.report.refused.append((key, error))
            return
        pending.error = error
        if error.kind is ErrorKind.THROTTLED:
            self.report.throttled += 1
            pause = error.retry_after if error.retry_after is not None else DEFAULT_THROTTLE_PAUSE
            self.limiter.slow_down(pause)
            self._delay(pending, pause)
        elif error.kind is ErrorKind.SERVICE:
            if self.report.service_error is None:
                logger.warning("the text service refused our account or configuration: %s", error.detail)
                self.report.service_error = error
            self.ready.appendleft(pending)
            self.stop()
        else:
            pending.tries += 1
            if pending.tries > len(RETRY_WAITS):
                self.report.left.append((key, error))
            else:
                self._delay(pending, error.retry_after or RETRY_WAITS[pending.tries - 1])

    def drain_and_record(self) -> None:
        """After an error: wait for the calls in flight, settle them and record what was sent,
        trying the record a few times (the error may have been the database's)."""
        try:
            for future in concurrent.futures.as_completed(list(self.in_flight)):
                self._settle_future(future)
        except BaseException:  # noqa: BLE001 - recording what we can matters more here
            logger.exception("could not settle the texts in flight")
        self._leave_the_rest()
        for delay in (0.0, 0.5, 1.0, 2.0):
            time.sleep(delay)
            try:
                self._flush(force=True)
                return
            except Exception:  # noqa: BLE001 - tried again, then given up
                logger.warning("could not record sent texts; trying again", exc_info=True)

    def _delay(self, pending: _Pending, seconds: float) -> None:
        heapq.heappush(self.delayed, (time.monotonic() + seconds, next(self._tie), pending))

    def _release_due(self) -> None:
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            self.ready.append(heapq.heappop(self.delayed)[2])

    def _leave_the_rest(self) -> None:
        waiting = list(self.ready) + [pending for _, _, pending in self.delayed]
        self.report.left.extend((pending.text.key, pending.error) for pending in waiting)
        self.ready.clear()
        self.delayed.clear()

    def _wait_timeout(self) -> float:
        timeout = min(0.5, self._until_flush()) if (self.sent or self.refused) else 0.5
        if self.delayed:
            timeout = min(timeout, self.delayed[0][0] - time.monotonic())
        return max(timeout, 0.0)

    def _until_flush(self) -> float:
        return max(self.flush_every_seconds - (time.monotonic() - self.last_flush), 0.0)

    def _maybe_flush(self) -> None:
        due = len(self.sent) + len(self.refused) >= self.flush_every_texts
        if due or (self.sent or self.refused) and self._until_flush() == 0:
            self._flush()

    def _waiting(self) -> int:
        queued = itertools.chain(self.ready, (pending for _, _, pending in self.delayed), self.in_flight.values())
        return sum(1 for pending in queued if pending.error is not None)

    def _flush(self, force: bool = False) -> None:
        if not (self.sent or self.refused or force):
            return
        if self.flush_callback is not None:
            self.flush_callback(Settled(sent=self.sent, refused=self.refused, waiting=self._waiting()))
        self.sent, self.refused = [], []  # cleared only once the caller recorded them
        self.last_flush = time.monotonic()

    # -- pool threads -----------------------------------------------------------------------------

    def _call(self, text: Text, start_at: float):
        delay = start_at - time.monotonic()
        if delay > 0:
            self.cancelled.wait(delay)
        if self.cancelled.is_set():  # sending stopped while this text waited for its slot
            return _NOT_STARTED, None
        try:
            return self.via.send(text), None
        except Exception as exc:  # noqa: BLE001 - classified by the calling thread
            return None, exc

    def close(self, *, transport: bool) -> None:
        self.cancelled.set()
        self.pool.shutdown(wait=True)
        if not transport:
            return
        try:
            self.via.close()
        except SoftTimeLimitExceeded:
            raise
        except Exception:  # noqa: BLE001 - closing a broken connection is not an error
            pass
