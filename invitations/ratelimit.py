"""Request limits per client address, counted where every web process sees them (core.throttle)."""

from django.http import HttpRequest

from core import throttle


def client_ip(request: HttpRequest) -> str:
    # REMOTE_ADDR only: a client can forge X-Forwarded-For. Behind a reverse proxy, have the
    # proxy / WSGI server put the client's address in REMOTE_ADDR.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def allow(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Count one request for (scope, key); False once `limit` is exceeded within the window."""
    return throttle.hit(scope, key, window_seconds=window_seconds) <= limit


def exceeded(scope: str, key: str, *, limit: int, window_seconds: int) -> bool:
    """Whether (scope, key) has already used up `limit` in this window (counts nothing)."""
    return throttle.count(scope, key, window_seconds=window_seconds) >= limit


def count_failure(scope: str, key: str, *, window_seconds: int) -> int:
    return throttle.hit(scope, key, window_seconds=window_seconds)
