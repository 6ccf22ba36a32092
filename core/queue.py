"""Enqueueing a Celery task once the current transaction commits, by the task's name.

By name, so that a service can hand work to a task without importing the module that defines it
(tasks import services, never the other way). The name is looked up in the Celery app's registry
when the transaction commits, so eager mode (tests) runs the task then.

Two queues keep the front desk's work ahead of bulk work: a single invitation, resend, alert or
reset email goes to `INTERACTIVE_QUEUE`, Activate Now's chunks and the heavy scheduled jobs to
`BULK_QUEUE` (the task routes in settings decide by task name). Every worker consumes both,
the interactive queue first, so a patient at the desk never waits behind a run of thousands.
Work that is many single tasks at once (the demo's seeded alerts) is sent from inside
`in_background()`, which puts it on the bulk queue.
"""

import contextlib
import contextvars
import logging
from functools import partial
from typing import Iterator, Optional

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)

#: The queues' names (settings: CELERY_TASK_QUEUES and CELERY_TASK_ROUTES use the same).
INTERACTIVE_QUEUE = "interactive"
BULK_QUEUE = "bulk"

_in_background: contextvars.ContextVar[bool] = contextvars.ContextVar("enqueue_in_background", default=False)


@contextlib.contextmanager
def in_background() -> Iterator[None]:
    """Tasks enqueued inside this block go to the bulk queue, whatever their route: a burst of
    single tasks that nobody is waiting for must not hold up the front desk's."""
    token = _in_background.set(True)
    try:
        yield
    finally:
        _in_background.reset(token)


def enqueue_on_commit(task: str, *args, countdown: float = 0, private: bool = False) -> None:
    """Send the task named `task` with `args` to the broker once the current transaction commits
    (after `countdown` seconds: a short wait only; long waits are rows with a due time, swept by
    beat).

    The rows the task works on are committed first and stay pending until it runs. If the broker
    cannot be reached, the request still succeeds: the failure is logged and the beat sweep that
    looks for work left pending enqueues it again, so nothing is lost.

    `private`: the arguments are what a visitor typed (an email address for a password reset), so
    a failure's log line names the task only.
    """
    queue = BULK_QUEUE if _in_background.get() else None  # read now: the commit may come after the block
    transaction.on_commit(partial(publish, task, args, countdown, private=private, queue=queue))


def registered_task(name: str):
    """The task called `name`. A web process never imports the apps' tasks modules itself
    (Celery's autodiscovery runs when a worker starts), so the first lookup imports them."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks[name]


def publish(task: str, args: tuple, countdown: float = 0, *, private: bool = False, queue: Optional[str] = None) -> None:
    try:
        options = {"countdown": countdown} if countdown else {}
        if queue:
            options["queue"] = queue
        registered_task(task).apply_async(
            args=args, retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5}, **options
        )
    except (BrokerUnavailable, OSError) as exc:
        if private:  # nothing sweeps these up: the visitor asks again
            logger.warning("Broker unreachable, %s not sent (%s)", task, type(exc).__name__)
        else:
            logger.warning("Broker unreachable, %s%s left for the sweep (%s)", task, args, type(exc).__name__)
