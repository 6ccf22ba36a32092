"""The Celery application. Settings live in Django settings under the CELERY_ namespace."""

import logging
import os
import sys
from functools import partial

from celery import Celery
from celery.signals import beat_init, celeryd_init
from kombu.exceptions import OperationalError as BrokerUnavailable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")

app = Celery("portal_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


@celeryd_init.connect
@beat_init.connect
def refuse_unsafe_production_config(**kwargs) -> None:
    """A worker or beat with an unsafe production configuration does not start. (Celery logs and
    swallows exceptions from signal handlers, so this exits explicitly.)"""
    from django.core.exceptions import ImproperlyConfigured

    from portal_project.checks import require_production_config

    try:
        require_production_config()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Refusing to start: {exc}\n")
        raise SystemExit(1) from exc


@app.task(name="portal.ping", ignore_result=False)
def ping() -> str:
    """Round trip check used by tests and ops: a worker answers 'pong'."""
    return "pong"


def enqueue_on_commit(task, *args, countdown: float = 0) -> None:
    """Send `task(*args)` to the broker once the current transaction commits (after `countdown`
    seconds: a short wait only; long waits are rows with a due time, swept by beat).

    The rows the task works on are committed first and stay pending until it runs. If the
    broker cannot be reached, the request still succeeds: the failure is logged and the beat
    sweep that looks for work left pending enqueues it again, so nothing is lost.
    """
    from django.db import transaction

    transaction.on_commit(partial(_publish, task, args, countdown))


def _publish(task, args: tuple, countdown: float = 0) -> None:
    try:
        options = {"countdown": countdown} if countdown else {}
        task.apply_async(args=args, retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5}, **options)
    except (BrokerUnavailable, OSError) as exc:
        logger.warning("Broker unreachable, %s%s left for the sweep (%s)", task.name, args, type(exc).__name__)
