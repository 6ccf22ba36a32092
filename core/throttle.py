"""Counting requests per client address or per account, shared by every web process.

A limit kept in one process's memory is no limit behind gunicorn's workers: each counts its own.
These counters live where every process sees them and are counted atomically: ``INCR`` in Redis
when the project has Redis (the cache's or the broker's), otherwise one upsert of a row
(`core.models.HitCount`) that returns the new count (PostgreSQL and SQLite alike). Windows are
fixed: a counter starts again at the start of its next window.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time

import redis
from django.conf import settings
from django.db import connection

from core.models import HitCount

#: One hit in this many also deletes the database's counters of windows long gone.
CLEANUP_ONE_IN = 200


def _window(window_seconds: int, now: float) -> int:
    return int(now // window_seconds)


def _key(scope: str, key: str) -> str:
    # Keys hold client addresses and usernames: hashed, so the table or Redis holds neither.
    return f"{scope}:{hashlib.sha256(key.encode('utf-8')).hexdigest()[:40]}"


def client_ip(request) -> str:
    """The client's address as the limits key it. REMOTE_ADDR only: a client can forge
    X-Forwarded-For; behind a reverse proxy, have the proxy or WSGI server set REMOTE_ADDR."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def allow(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one request for (scope, key); False once `limit` is exceeded within the window."""
    return hit(scope, key, window_seconds=window_seconds) <= limit


def exceeded(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Whether (scope, key) has already used up `limit` in this window (counts nothing)."""
    return count(scope, key, window_seconds=window_seconds) >= limit


def hit(scope: str, key: str, *, window_seconds: int) -> int:
    """Count one hit for (scope, key) in the current window; the count so far, this one included."""
    return _store().hit(_key(scope, key), window_seconds, time.time())


def count(scope: str, key: str, *, window_seconds: int) -> int:
    """The hits counted for (scope, key) in the current window, counting none."""
    return _store().count(_key(scope, key), window_seconds, time.time())


def clear(scope: str, key: str) -> None:
    _store().clear(_key(scope, key))


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

    def count(self, key: str, window_seconds: int, now: float) -> int:
        return int(self.client.get(self._name(key, window_seconds, now)) or 0)

    def clear(self, key: str) -> None:
        for name in self.client.scan_iter(f"portal:hits:{key}:*"):
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

    def count(self, key: str, window_seconds: int, now: float) -> int:
        row = HitCount.objects.filter(name=key, window_index=_window(window_seconds, now)).values_list("hits", flat=True).first()
        return int(row or 0)

    def clear(self, key: str) -> None:
        HitCount.objects.filter(name=key).delete()


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
