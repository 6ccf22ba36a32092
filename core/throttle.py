"""Counting requests per client address or per account, shared by every web process.

A limit kept in one process's memory is no limit behind gunicorn's workers: each counts its own.
These counters live where every process sees them and are counted atomically: ``INCR`` in Redis
when the project has Redis (the cache's or the broker's), otherwise one upsert of a row
(`core.models.HitCount`) that returns the new count (PostgreSQL and SQLite alike). Windows are
fixed: a counter starts again at the start of its next window.

A limit counts before it decides: `attempt()` adds this request to the count and answers from the
count it got back, in one atomic step, so however many requests arrive at once no more than the
limit are let through. A check first and a count afterwards lets every request that arrives before
the first one is counted through (40 guesses at once got 26 through a limit of 10). A request that
should not have counted (a sign-in that succeeded) gives its place back with `Attempt.release()`.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connection, models

from core.models import HitCount

#: One hit in this many also deletes the database's counters of windows long gone.
CLEANUP_ONE_IN = 200


def _window(window_seconds: int, now: float) -> int:
    return int(now // window_seconds)


Key = str | tuple[str, ...]


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _key(scope: str, key: Key) -> str:
    # Keys hold client addresses and usernames: hashed, so the table or Redis holds neither. A
    # key of several parts (account, address) is hashed part by part, so that `clear(scope,
    # (account,))` can forget every address's count for that account.
    if isinstance(key, tuple):
        return f"{scope}:" + ":".join(_digest(part, 24) for part in key)
    return f"{scope}:{_digest(key, 40)}"


def client_ip(request) -> str:
    """The client's address as the limits key it. REMOTE_ADDR only: a client can forge
    X-Forwarded-For; behind a reverse proxy, have the proxy or WSGI server set REMOTE_ADDR."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


@dataclass
class Attempt:
    """One request counted against a limit: `allowed` once the count, this request included, is
    within the limit."""

    scope: str
    key: Key
    window_seconds: int
    counted_at: float
    count: int
    limit: int

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    def release(self) -> None:
        """Take this request back out of its window's count (it succeeded and should not count)."""
        _store().release(_key(self.scope, self.key), self.window_seconds, self.counted_at)


def attempt(scope: str, key: Key, *, limit: int, window_seconds: int) -> Attempt:
    """Count one request for (scope, key), then decide: one atomic increment-and-compare."""
    now = time.time()
    count = _store().hit(_key(scope, key), window_seconds, now)
    return Attempt(scope=scope, key=key, window_seconds=window_seconds, counted_at=now, count=count, limit=limit)


def allow(scope: str, key: Key, *, limit: int, window_seconds: int) -> bool:
    """Count one request for (scope, key); False once `limit` is exceeded within the window."""
    return attempt(scope, key, limit=limit, window_seconds=window_seconds).allowed


def take_turn(scope: str, key: Key, *, seconds: float) -> bool:
    """True for the first caller for (scope, key) in `seconds`, False for everyone else until they
    have passed: one turn each so many seconds, decided atomically (Redis SET NX, or one
    conditional upsert)."""
    return _store().take_turn(_key(f"turn:{scope}", key), seconds, time.time())


def count(scope: str, key: Key, *, window_seconds: int) -> int:
    """The hits counted for (scope, key) in the current window, counting none."""
    return _store().count(_key(scope, key), window_seconds, time.time())


def clear(scope: str, key: Key) -> None:
    """Forget (scope, key)'s counts and its turn; a key of fewer parts than the counted ones
    forgets every key that starts with them."""
    _store().clear(_key(scope, key))
    _store().clear(_key(f"turn:{scope}", key))


class _RedisCounters:
    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _name(self, key: str, window_seconds: int, now: float) -> str:
        return f"portal:hits:{key}:{_window(window_seconds, now)}"

    def hit(self, key: str, window_seconds: int, now: float) -> int:
        name = self._name(key, window_seconds, now)
        pipe = self.client.pipeline()
        pipe.incr(name)
        pipe.expire(name, window_seconds + 60)
        return int(pipe.execute()[0])

    def release(self, key: str, window_seconds: int, counted_at: float) -> None:
        name = self._name(key, window_seconds, counted_at)
        # The window the hit was counted in, never the current one; an expired window's key comes
        # back for a moment as -1 and expires again.
        pipe = self.client.pipeline()
        pipe.decr(name)
        pipe.expire(name, window_seconds + 60)
        pipe.execute()

    def count(self, key: str, window_seconds: int, now: float) -> int:
        return int(self.client.get(self._name(key, window_seconds, now)) or 0)

    def take_turn(self, key: str, seconds: float, now: float) -> bool:
        return bool(self.client.set(f"portal:hits:{key}", 1, nx=True, px=max(1, int(seconds * 1000))))

    def clear(self, key: str) -> None:
        for name in self.client.scan_iter(f"portal:hits:{key}*"):
            self.client.delete(name)


class _DatabaseCounters:
    def hit(self, key: str, window_seconds: int, now: float) -> int:
        table = connection.ops.quote_name(HitCount._meta.db_table)
        window = _window(window_seconds, now)
        # One statement: a new row, or the same window's count plus one, or a new window's first.
        statement = (
            f"INSERT INTO {table} (name, window_index, hits, expires_at) VALUES (%s, %s, 1, %s) "
            f"ON CONFLICT (name) DO UPDATE SET "
            f"hits = CASE WHEN {table}.window_index = excluded.window_index THEN {table}.hits + 1 ELSE 1 END, "
            f"window_index = excluded.window_index, expires_at = excluded.expires_at RETURNING hits"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [key, window, now + window_seconds])
            hits = cursor.fetchone()[0]
            if random.randrange(CLEANUP_ONE_IN) == 0:
                cursor.execute(f"DELETE FROM {table} WHERE expires_at < %s", [now - 3600])
        return int(hits)

    def release(self, key: str, window_seconds: int, counted_at: float) -> None:
        HitCount.objects.filter(name=key, window_index=_window(window_seconds, counted_at), hits__gt=0).update(
            hits=models.F("hits") - 1
        )

    def count(self, key: str, window_seconds: int, now: float) -> int:
        row = HitCount.objects.filter(name=key, window_index=_window(window_seconds, now)).values_list("hits", flat=True).first()
        return int(row or 0)

    def take_turn(self, key: str, seconds: float, now: float) -> bool:
        table = connection.ops.quote_name(HitCount._meta.db_table)
        # A row comes back only when this statement made it or took over one whose turn had passed.
        statement = (
            f"INSERT INTO {table} (name, window_index, hits, expires_at) VALUES (%s, 0, 1, %s) "
            f"ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at, hits = 1 "
            f"WHERE {table}.expires_at <= %s RETURNING hits"
        )
        with connection.cursor() as cursor:
            cursor.execute(statement, [key, now + seconds, now])
            return cursor.fetchone() is not None

    def clear(self, key: str) -> None:
        HitCount.objects.filter(models.Q(name=key) | models.Q(name__startswith=f"{key}:")).delete()


def store_url() -> str:
    for url in (settings.CACHES.get("default", {}).get("LOCATION", ""), getattr(settings, "CELERY_BROKER_URL", "")):
        if isinstance(url, str) and url.startswith(("redis://", "rediss://")):
            return url
    return "database"


def _store():
    return _store_for(store_url())


@functools.lru_cache(maxsize=4)
def _store_for(url: str):
    return _RedisCounters(url) if url.startswith(("redis://", "rediss://")) else _DatabaseCounters()
