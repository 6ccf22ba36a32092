"""Health checks shared by GET /healthz (load balancers, monitors) and the admin's system status page.

Each check answers quickly (short timeouts) and never includes secrets: no URLs with passwords,
no keys; only names, ages and yes/no.
"""

import datetime
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone

from patients.jobs import HEARTBEAT_STALE_AFTER, heartbeat_is_fresh, latest_heartbeat


#: Lines the apps above add to the system status page (`add_status_line`): each a callable
#: taking the page's clock reading and returning (label, text).
_STATUS_LINES: list[Callable[[datetime.datetime], tuple[str, str]]] = []


def add_status_line(line: Callable[[datetime.datetime], tuple[str, str]]) -> None:
    """For an app above this one (it registers in its AppConfig.ready; this app imports none)."""
    if line not in _STATUS_LINES:
        _STATUS_LINES.append(line)


def status_lines(now: datetime.datetime) -> list[tuple[str, str]]:
    return [line(now) for line in _STATUS_LINES]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    data: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        payload = asdict(self)
        payload.pop("name")
        return payload


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not reachable"
        return Check("database", False, f"unreachable ({type(exc).__name__})")
    return Check("database", True, connection.vendor)


def broker_kind() -> str:
    return settings.CELERY_BROKER_URL.split("://", 1)[0] or "unknown"


def check_broker(timeout: float = 2.0) -> Check:
    kind = broker_kind()
    if kind == "filesystem":
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        ok = os.path.isdir(folder) and os.access(folder, os.W_OK)
        return Check("broker", ok, "filesystem queue" + ("" if ok else " folder missing or read-only"))
    try:
        with current_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            # A round trip, not just a socket: Redis answers PING.
            client = getattr(conn.default_channel, "client", None)
            if client is not None and hasattr(client, "ping"):
                client.ping()
    except Exception as exc:
        return Check("broker", False, f"{kind} unreachable ({type(exc).__name__})")
    return Check("broker", True, kind)


def check_worker(now: Optional[datetime.datetime] = None) -> Check:
    now = now or timezone.now()
    try:
        seen = latest_heartbeat()
    except Exception as exc:
        return Check("worker", False, f"unknown ({type(exc).__name__})")
    if seen is None:
        return Check("worker", False, "no worker has reported yet", {"last_seen_seconds": None})
    age = (now - seen).total_seconds()
    fresh = heartbeat_is_fresh(seen, now)
    detail = f"last heartbeat {int(age)} s ago" + ("" if fresh else f" (stale after {int(HEARTBEAT_STALE_AFTER.total_seconds())} s)")
    return Check("worker", fresh, detail, {"last_seen_seconds": int(age)})


def run_all(now: Optional[datetime.datetime] = None) -> list[Check]:
    database = check_database()
    checks = [database, check_broker()]
    checks.append(check_worker(now) if database.ok else Check("worker", False, "database unreachable"))
    return checks
