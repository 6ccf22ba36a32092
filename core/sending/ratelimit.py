"""One provider account's sending rate, shared by every worker process and every practice.

A provider limits the whole account (Amazon SES starts at 14 messages a second), so the limit
cannot live in one process. The account's state is one small record, in Redis when the project has
Redis (the Celery broker or the cache), in the database otherwise; every change to it is one
atomic read-decide-write (`_Store.transact`), and the deciding is written once, here
(`BucketState`), for both stores:

* **Our rate** (``PORTAL_EMAIL_RATE_LIMIT``, messages a second): a generic cell rate algorithm, the
  token bucket kept as one number (the "theoretical arrival time"). Each sender *reserves* a slot
  and learns when it starts, so waiting senders do not poll, and a sender whose slot would come
  after its own deadline reserves nothing. ``PORTAL_EMAIL_RATE_BURST`` messages may go back to back
  after a quiet spell (default 1: evenly spaced).
* **The provider's word** (a 429, `slow_down`): every sender pauses until the Retry-After has
  passed (the throttled messages are tried again after it), and the account learns from it. Two
  kinds of 429 teach different lessons:

  - *jitter*: we were keeping to our own rate (evenly spaced) and 429s are rare (at most `JITTER_SHARE`
    of the recent calls). A provider that counts a strict one-second window at exactly our rate
    refuses now and then the one request that timing jitter moved into the next second; cutting
    the rate by 30 % for that would cost far more than the 429. The account keeps to
    `JITTER_MARGIN` of our rate instead (a few percent of slack for the jitter), until 10 quiet
    minutes have passed;
  - *a real limit* (the provider's is below ours, or we have none): the account learns a rate
    30 % below the one that was throttled, so the senders do not all rush back at the provider
    together. The learned rate rises again by 10 % every 3 seconds without a 429, back to ours
    (or to none), and is forgotten after 10 quiet minutes. A provider whose limit is below ours
    refuses a steady share of our calls, second after second: the share of 429s (over the last
    ten seconds or so) passes `JITTER_SHARE` within a second or two and this lesson is learned.

With no rate in force (none configured, none learned) a process touches the store only a few
times a second: to add what it sent (the observed rate a 429 learns from) and read the pause.
``PORTAL_RATE_LIMIT_STORE``: a ``redis://`` URL or ``database``; by default the broker's or the
cache's Redis, else the database.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional

import redis
from django.conf import settings
from django.db import IntegrityError, transaction

from core.models import RateBucket

#: Reserve at most this far ahead when no deadline is given: a caller never sleeps longer.
DEFAULT_MAX_WAIT = 60.0
#: With no rate in force, a process syncs with the store at most this often.
SYNC_EVERY = 0.25
#: The observed rate is counted over windows of this many seconds.
WINDOW = 1.0
#: After a 429 the learned rate is this share of the rate that was throttled ...
DECREASE_TO = 0.7
#: ... never below this (messages a second) ...
MIN_RATE = 0.2
#: ... and rises by RAISE_BY (plus half a message a second) after each RAISE_EVERY seconds of calm,
RAISE_EVERY = 3.0
RAISE_BY = 1.10
#: until it reaches our own rate, or is forgotten after this long without a 429.
FORGET_AFTER = 600.0
#: A 429 while we kept to our own rate, with 429s at most JITTER_SHARE of the recent calls, is
#: jitter: the account keeps to JITTER_MARGIN of our rate instead of learning a lower one. Calls and
#: 429s are counted with this half-life (seconds), over at least JITTER_SAMPLE calls (so the first
#: 429 of a run is judged against a fair sample).
JITTER_SHARE = 0.03
JITTER_MARGIN = 0.95
SHARE_HALF_LIFE = 10.0
JITTER_SAMPLE = 100.0


@dataclass
class BucketState:
    """The shared state of one provider account; times are seconds on the store's clock."""

    tat: float = 0.0  # when the next message may go at the rate in force
    pause: float = 0.0  # nobody sends before this (the provider asked us to wait)
    learned: float = 0.0  # a rate learned from the provider's 429s; 0 = none
    throttled_at: float = 0.0
    raised_at: float = 0.0
    window_start: float = 0.0
    window_count: float = 0.0  # messages reserved since window_start
    observed: float = 0.0  # messages a second in the last full window
    margin: float = 0.0  # after a jitter 429: the share of our rate kept to; 0 = none
    calls: float = 0.0  # messages reserved, decayed with SHARE_HALF_LIFE
    refusals: float = 0.0  # 429 answers, decayed alike
    decayed_at: float = 0.0

    # -- the rules ----------------------------------------------------------------------------

    def rate(self, configured: float) -> float:
        """The rate in force: ours (less the jitter margin), or the learned one where it is lower; 0 = none."""
        ours = self._ours(configured)
        if self.learned and (not ours or self.learned < ours):
            return self.learned
        return ours

    def _ours(self, configured: float) -> float:
        return configured * self.margin if configured and self.margin else configured

    def _count(self, now: float, messages: float) -> None:
        if now > self.decayed_at:
            factor = 0.5 ** ((now - self.decayed_at) / SHARE_HALF_LIFE) if self.decayed_at else 0.0
            self.calls, self.refusals, self.decayed_at = self.calls * factor, self.refusals * factor, now
        self.calls += messages
        self.window_count += messages

    def tick(self, now: float, configured: float, counted: float = 0.0) -> None:
        """Count `counted` messages, roll the observed-rate window, let a learned rate recover."""
        if not self.window_start or now < self.window_start:
            self.window_start = now
        self._count(now, counted)
        elapsed = now - self.window_start
        if elapsed >= WINDOW:
            self.observed = self.window_count / elapsed if elapsed <= 10 * WINDOW else 0.0
            self.window_start, self.window_count = now, 0.0
        if self.margin and now - self.throttled_at >= FORGET_AFTER:
            self.margin = 0.0
        if self.learned:
            calm = now - self.throttled_at
            if calm >= FORGET_AFTER:
                self.learned = 0.0
            elif now - max(self.throttled_at, self.raised_at) >= RAISE_EVERY:
                self.learned = self.learned * RAISE_BY + 0.5
                self.raised_at = now
                if configured and self.learned >= self._ours(configured):
                    self.learned = 0.0

    def reserve(self, now: float, *, cost: int, max_wait: float, configured: float, burst: float) -> Optional[float]:
        """The start of a slot for `cost` messages, or None (nothing reserved) if it is more than
        `max_wait` seconds away."""
        self.tick(now, configured)
        rate = self.rate(configured)
        if not rate:
            start = max(now, self.pause)
            if start - now > max_wait:
                return None
            self._count(now, cost)
            return start
        interval = 1.0 / rate
        tolerance = max(burst - 1.0, 0.0) * interval
        base = max(self.tat, now, self.pause)
        start = max(base - tolerance, now, self.pause)
        if start - now > max_wait:
            return None
        self.tat = base + cost * interval
        self._count(now, cost)
        return start

    def wait_for(self, now: float, *, cost: int, configured: float, burst: float) -> float:
        """How long until a slot for `cost` messages (reserving nothing)."""
        rate = self.rate(configured)
        if not rate:
            return max(self.pause - now, 0.0)
        tolerance = max(burst - 1.0, 0.0) / rate
        return max(max(self.tat, now, self.pause) - tolerance, now, self.pause) - now

    def throttled(self, now: float, *, seconds: float, configured: float, burst: float = 1.0) -> str:
        """The provider answered 429: pause everyone for `seconds` (its Retry-After), and learn
        from it (module docstring): "jitter" keeps near our rate, "limit" learns a rate 30 % lower
        once per episode (the 429s of one burst arrive together; they are one lesson, not ten).
        Returns the lesson, or "" when this 429 belongs to an episode already learned from."""
        self.tick(now, configured)
        self.pause = max(self.pause, now + seconds)
        self.refusals += 1
        recent = self.window_count / max(now - self.window_start, WINDOW)
        sending = max(self.observed, recent)
        lesson = ""
        if self.is_jitter(configured, burst=burst):
            self.margin, lesson = JITTER_MARGIN, "jitter"
        elif now - self.throttled_at >= max(seconds, WINDOW) or not self.learned:
            throttled_rate = self.rate(configured) or sending or 1.0
            self.learned = max(MIN_RATE, throttled_rate * DECREASE_TO)
            self.raised_at, lesson = now, "limit"
        self.throttled_at = now
        return lesson

    def is_jitter(self, configured: float, *, burst: float) -> bool:
        """A 429 that timing jitter explains: we have a rate of our own and were keeping to it (no
        lower rate learned, slots evenly spaced: no burst allowance, so what we sent was at most our
        rate whatever the slots booked ahead), and 429s are rare (a small share of the recent calls)."""
        if not configured or self.learned or burst > 1.0:
            return False
        return self.refusals / max(self.calls, JITTER_SAMPLE) <= JITTER_SHARE


class RateLimiter:
    """The shared rate of one provider account (``name``: "email", later "sms")."""

    def __init__(self, name: str, *, rate: float, burst: float = 1.0, store: "_Store"):
        self.name = name
        self.configured = max(float(rate), 0.0)
        self.burst = max(float(burst), 1.0)
        self.store = store
        self._lock = threading.Lock()
        # What this process last learned from the store, for the path with no rate in force.
        self._synced_at = float("-inf")
        self._pause = 0.0  # on this process's clock
        self._rate_in_force = self.configured
        self._unsynced = 0.0
        #: After `reserve_slot` refused: how far away the slot was (seconds).
        self.last_refused_wait: Optional[float] = None

    def reserve(self, cost: int = 1, *, max_wait: Optional[float] = None) -> Optional[float]:
        """Reserve `cost` messages; the seconds to wait before sending them (0: now), or None
        when the slot is more than `max_wait` seconds away (nothing is reserved)."""
        slot = self.reserve_slot(cost, max_wait=max_wait)
        return None if slot is None else max(slot - time.time(), 0.0)

    def reserve_slot(self, cost: int = 1, *, max_wait: Optional[float] = None) -> Optional[float]:
        """Like `reserve`, but the slot's start as a `time.time()` value."""
        limit = DEFAULT_MAX_WAIT if max_wait is None else max(max_wait, 0.0)
        with self._lock:
            if not self._rate_in_force:
                self._sync_if_due()
            if not self._rate_in_force:
                now = time.time()
                start = max(now, self._pause)
                if start - now > limit:
                    self.last_refused_wait = start - now
                    return None
                self._unsynced += cost
                return start

        def decide(state: BucketState, now: float):
            start = state.reserve(now, cost=cost, max_wait=limit, configured=self.configured, burst=self.burst)
            wait = None if start is not None else state.wait_for(now, cost=cost, configured=self.configured, burst=self.burst)
            return start, wait, state.rate(self.configured)

        (start, wait, rate), offset = self.store.transact(decide)
        with self._lock:
            self._rate_in_force = rate
            if start is None:
                self.last_refused_wait = wait
        return None if start is None else start + offset

    def wait_for(self, cost: int = 1, *, max_wait: Optional[float] = None) -> bool:
        """Reserve and sleep until the slot; False (nothing reserved) if it is beyond `max_wait`."""
        wait = self.reserve(cost, max_wait=max_wait)
        if wait is None:
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def slow_down(self, seconds: float) -> None:
        """The provider throttled us: every sender of this account waits `seconds` from now, and
        the account learns a lower rate."""
        seconds = max(seconds, 0.0)
        with self._lock:  # what this process sent and has not told the store: part of the lesson
            counted, self._unsynced = self._unsynced, 0.0

        def decide(state: BucketState, now: float):
            state.tick(now, self.configured, counted)
            state.throttled(now, seconds=seconds, configured=self.configured, burst=self.burst)
            return state.pause, state.rate(self.configured)

        (pause, rate), offset = self.store.transact(decide)
        with self._lock:
            self._pause, self._rate_in_force, self._synced_at = pause + offset, rate, time.time()

    def paused_for(self) -> float:
        """Seconds until the shared pause ends (0 if none)."""
        pause, offset = self.store.transact(lambda state, now: state.pause, write=False)
        return max(pause + offset - time.time(), 0.0)

    def rate_in_force(self) -> float:
        """Messages a second senders are held to now (0: none); for status pages and tests."""

        def read(state: BucketState, now: float) -> float:
            state.tick(now, self.configured)  # recovery due by now, not written
            return state.rate(self.configured)

        return self.store.transact(read, write=False)[0]

    def reset(self) -> None:
        """Forget the account's state (tests; ops after changing the rate)."""
        self.store.clear()
        with self._lock:
            self._synced_at, self._pause, self._rate_in_force, self._unsynced = float("-inf"), 0.0, self.configured, 0.0

    def _sync_if_due(self) -> None:
        if abs(time.time() - self._synced_at) < SYNC_EVERY:
            return
        counted, self._unsynced = self._unsynced, 0.0

        def decide(state: BucketState, now: float):
            state.tick(now, self.configured, counted)
            return state.pause, state.rate(self.configured)

        (pause, rate), offset = self.store.transact(decide)
        self._pause, self._rate_in_force, self._synced_at = pause + offset, rate, time.time()


# == where the state lives ========================================================================


class _Store:
    def transact(self, decide: Callable[[BucketState, float], tuple], *, write: bool = True) -> tuple:
        """Load the state, call ``decide(state, now)`` (which may change it), save it, atomically.
        Returns what `decide` returned and the offset from the store's clock to this process's."""
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class RedisStore(_Store):
    """One hash per account, changed in a WATCH/MULTI transaction on Redis's own clock (workers'
    clocks may differ)."""

    def __init__(self, name: str, url: str):
        self.key = f"portal:send-rate:{name}"
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._watch_error = redis.WatchError

    def transact(self, decide, *, write: bool = True):
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self.key)
                    raw = pipe.hgetall(self.key)
                    seconds, micros = pipe.time()
                    now = seconds + micros / 1_000_000
                    offset = time.time() - now
                    state = BucketState(**{k.decode(): float(v) for k, v in raw.items() if k.decode() in _FIELDS})
                    result = decide(state, now)
                    if not write:
                        pipe.unwatch()
                        return result, offset
                    pipe.multi()
                    pipe.hset(self.key, mapping={k: repr(v) for k, v in asdict(state).items()})
                    pipe.pexpire(self.key, int((max(state.tat, state.pause, now) - now + FORGET_AFTER) * 1000))
                    pipe.execute()
                    return result, offset
                except self._watch_error:
                    continue  # another sender changed it first: decide again on its state

    def clear(self) -> None:
        self.client.delete(self.key)


class DatabaseStore(_Store):
    """One row per account (`core.models.RateBucket`), locked for the read-decide-write. Uses
    the workers' clocks (kept in step by NTP); meant for the embedded defaults and small sites
    without Redis."""

    def __init__(self, name: str):
        self.name = name

    def transact(self, decide, *, write: bool = True):
        for _ in range(3):
            try:
                with transaction.atomic():
                    row = RateBucket.objects.select_for_update().filter(name=self.name).first()
                    if row is None:
                        row = RateBucket.objects.create(name=self.name)
                    state = BucketState(**{name: getattr(row, name) for name in _FIELDS})
                    result = decide(state, time.time())
                    if write:
                        RateBucket.objects.filter(name=self.name).update(**asdict(state))
                    return result, 0.0
            except IntegrityError:
                continue  # two processes created the row at once; the other one won
        raise RuntimeError("could not create the sending-rate row")

    def clear(self) -> None:
        RateBucket.objects.filter(name=self.name).delete()


_FIELDS = {f.name for f in fields(BucketState)}


def store_url() -> str:
    """Where the shared rate lives: PORTAL_RATE_LIMIT_STORE, else the broker's or the cache's
    Redis, else the database."""
    configured = getattr(settings, "PORTAL_RATE_LIMIT_STORE", "")
    if configured:
        return configured
    for url in (getattr(settings, "CELERY_BROKER_URL", ""), settings.CACHES.get("default", {}).get("LOCATION", "")):
        if isinstance(url, str) and url.startswith(("redis://", "rediss://")):
            return url
    return "database"


def limiter(name: str = "email") -> RateLimiter:
    """The process's limiter for one provider account, from the current settings."""
    prefix = name.upper()
    return _limiter(
        name,
        float(getattr(settings, f"PORTAL_{prefix}_RATE_LIMIT", 0) or 0),
        float(getattr(settings, f"PORTAL_{prefix}_RATE_BURST", 1) or 1),
        store_url(),
    )


def make(name: str, *, rate: float, burst: float = 1.0, store: str = "database") -> RateLimiter:
    backend = RedisStore(name, store) if store.startswith(("redis://", "rediss://")) else DatabaseStore(name)
    return RateLimiter(name, rate=rate, burst=burst, store=backend)


@functools.lru_cache(maxsize=16)
def _limiter(name: str, rate: float, burst: float, store: str) -> RateLimiter:
    return make(name, rate=rate, burst=burst, store=store)
