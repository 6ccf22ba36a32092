"""One provider account's sending rate, shared by every worker process and every practice.

A provider limits the whole account (Amazon SES starts at 14 messages a second), so the limit
cannot live in one process: it is a generic cell rate algorithm (a token bucket kept as one
number, the "theoretical arrival time") in Redis when the project has Redis (the Celery broker or
the cache), in the database otherwise. Each sender *reserves* a slot and learns how long to wait
for it, so waiting senders do not poll, and a sender whose slot would come after its own deadline
reserves nothing.

A 429 from the provider (`slow_down`) pauses every sender until the Retry-After has passed,
whatever the configured rate: the provider's word wins over our setting.

Settings: ``PORTAL_EMAIL_RATE_LIMIT`` (messages per second, 0 = no limit of ours) and
``PORTAL_EMAIL_RATE_BURST`` (how many may go at once after a quiet spell, default 1: evenly spaced),
``PORTAL_RATE_LIMIT_STORE`` (a ``redis://`` URL or ``database``; by default the broker's or the
cache's Redis, else the database).
"""

from __future__ import annotations

import functools
import time
from typing import Optional

from django.conf import settings
from django.db import connection

#: Reserve at most this far ahead when no deadline is given: a caller never sleeps longer.
DEFAULT_MAX_WAIT = 60.0
#: With no rate of ours, a process re-reads the shared pause at most this often.
PAUSE_READ_EVERY = 0.5


class RateLimiter:
    """The rate of one provider account (``name``: "email", later "sms")."""

    def __init__(self, name: str, *, rate: float, burst: float = 1.0):
        self.name = name
        self.rate = max(float(rate), 0.0)
        self.interval = 1.0 / self.rate if self.rate else 0.0
        # The bucket holds `burst` messages: that many may go back to back after a pause.
        self.tolerance = max(float(burst) - 1.0, 0.0) * self.interval
        self._pause_seen = 0.0
        self._pause_read_at = float("-inf")

    # -- the two operations ------------------------------------------------------------------

    def reserve(self, cost: int = 1, *, max_wait: Optional[float] = None) -> Optional[float]:
        """Reserve `cost` messages; return the seconds to wait before sending them (0: now).

        None when the slot is more than `max_wait` seconds away: nothing is reserved, and the
        caller stops (its deadline comes first) or asks again later.
        """
        limit = DEFAULT_MAX_WAIT if max_wait is None else max(max_wait, 0.0)
        if not self.rate:
            pause = self._shared_pause()
            wait = max(pause - time.time(), 0.0)
            return wait if wait <= limit else None
        return self._reserve(cost, limit)

    def wait_for(self, cost: int = 1, *, max_wait: Optional[float] = None) -> bool:
        """Reserve and sleep until the slot; False (nothing reserved) if it is beyond `max_wait`."""
        wait = self.reserve(cost, max_wait=max_wait)
        if wait is None:
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def slow_down(self, seconds: float) -> None:
        """The provider throttled us: every sender of this account waits `seconds` from now."""
        until = time.time() + max(seconds, 0.0)
        self._pause(until)
        self._pause_seen, self._pause_read_at = max(self._pause_seen, until), time.monotonic()

    def paused_for(self) -> float:
        """Seconds until the shared pause ends (0 if none); for status pages and tests."""
        self._pause_read_at = float("-inf")
        return max(self._shared_pause() - time.time(), 0.0)

    def _shared_pause(self) -> float:
        now = time.monotonic()
        if now - self._pause_read_at >= PAUSE_READ_EVERY:
            self._pause_seen, self._pause_read_at = self._read_pause(), now
        return self._pause_seen

    # -- the store -------------------------------------------------------------------------------

    def _reserve(self, cost: int, max_wait: float) -> Optional[float]:
        raise NotImplementedError

    def _pause(self, until: float) -> None:
        raise NotImplementedError

    def _read_pause(self) -> float:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the account's state (tests, and ops after changing the rate)."""
        raise NotImplementedError


# Redis: the whole decision in one script, on Redis's own clock (workers' clocks may differ).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tat', 'pause')
local tat = tonumber(state[1]) or 0
local pause = tonumber(state[2]) or 0
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local base = math.max(tat, now, pause)
local start = math.max(base - tolerance, now, pause)
local wait = start - now
if wait > max_wait then
  return {0, tostring(wait)}
end
local new_tat = base + cost * interval
redis.call('HSET', KEYS[1], 'tat', tostring(new_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(new_tat, pause) - now + 60) * 1000))
return {1, tostring(wait)}
"""
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause')) or 0
if until_ > pause then
  redis.call('HSET', KEYS[1], 'pause', tostring(until_))
  local ttl = redis.call('PTTL', KEYS[1])
  local needed = math.ceil((until_ - now + 60) * 1000)
  if ttl < needed then redis.call('PEXPIRE', KEYS[1], needed) end
end
return tostring(until_ - now)
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, name: str, *, url: str, **kwargs):
        import redis

        super().__init__(name, **kwargs)
        self.key = f"portal:send-rate:{name}"
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._reserve_script = self.client.register_script(_RESERVE)
        self._pause_script = self.client.register_script(_PAUSE)

    def _reserve(self, cost: int, max_wait: float) -> Optional[float]:
        granted, wait = self._reserve_script(keys=[self.key], args=[self.interval, self.tolerance, cost, max_wait])
        return float(wait) if int(granted) else None

    def _pause(self, until: float) -> None:
        # The pause is measured on Redis's clock: pass the length, not our clock's end time.
        self._pause_script(keys=[self.key], args=[max(until - time.time(), 0.0)])

    def _read_pause(self) -> float:
        # Redis's pause is on Redis's clock; translate to ours through the remaining time.
        pause, server_time = self.client.pipeline().hget(self.key, "pause").time().execute()
        if not pause:
            return 0.0
        remaining = float(pause) - (server_time[0] + server_time[1] / 1_000_000)
        return time.time() + remaining if remaining > 0 else 0.0

    def reset(self) -> None:
        self.client.delete(self.key)
        self._pause_seen = 0.0


class DatabaseRateLimiter(RateLimiter):
    """The same bucket as one row, changed by one conditional UPDATE per reservation. Uses the
    workers' clocks (kept in step by NTP); meant for the embedded defaults and small sites
    without Redis."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self._ensured = False

    def _table(self, *, ensure: bool = False) -> str:
        from core.models import RateBucket

        if ensure or not self._ensured:
            RateBucket.objects.get_or_create(name=self.name)
            self._ensured = True
        return connection.ops.quote_name(RateBucket._meta.db_table)

    def _reserve(self, cost: int, max_wait: float, *, ensure: bool = False) -> Optional[float]:
        table = self._table(ensure=ensure)
        greatest = "GREATEST" if connection.vendor == "postgresql" else "max"
        now = time.time()
        base = f"{greatest}(tat, %s, pause)"
        statement = (
            f"UPDATE {table} SET tat = {base} + %s "
            f"WHERE name = %s AND {greatest}({base} - %s, %s, pause) - %s <= %s "
            "RETURNING tat, pause"
        )
        params = [now, cost * self.interval, self.name, now, self.tolerance, now, now, max_wait]
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
            if row is None and not ensure:
                cursor.execute(f"SELECT 1 FROM {table} WHERE name = %s", [self.name])
                if cursor.fetchone() is None:  # the row went (a test's rollback, a reset database)
                    return self._reserve(cost, max_wait, ensure=True)
        if row is None:
            return None
        new_tat, pause = row
        start = max(new_tat - cost * self.interval - self.tolerance, now, pause)
        return max(start - now, 0.0)

    def _pause(self, until: float) -> None:
        table = self._table(ensure=True)
        greatest = "GREATEST" if connection.vendor == "postgresql" else "max"
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET pause = {greatest}(pause, %s) WHERE name = %s", [until, self.name])

    def _read_pause(self) -> float:
        from core.models import RateBucket

        table = connection.ops.quote_name(RateBucket._meta.db_table)  # no row yet: no pause
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pause FROM {table} WHERE name = %s", [self.name])
            row = cursor.fetchone()
        return float(row[0]) if row else 0.0

    def reset(self) -> None:
        from core.models import RateBucket

        RateBucket.objects.filter(name=self.name).update(tat=0.0, pause=0.0)
        self._pause_seen = 0.0


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


@functools.lru_cache(maxsize=16)
def _limiter(name: str, rate: float, burst: float, store: str) -> RateLimiter:
    if store.startswith(("redis://", "rediss://")):
        return RedisRateLimiter(name, url=store, rate=rate, burst=burst)
    return DatabaseRateLimiter(name, rate=rate, burst=burst)
