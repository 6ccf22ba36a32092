"""Enqueueing a Celery task once the current transaction commits, by the task's name.

By name, so that a service can hand work to a task without importing the module that defines it
(tasks import services, never the other way). The name is looked up in the Celery app's registry
when the transaction commits, so eager mode (tests) runs the task then.
"""

import logging
from functools import partial

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)


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
    transaction.on_commit(partial(publish, task, args, countdown, private=private))


def registered_task(name: str):
    """The task called `name`. A web process never imports the apps' tasks modules itself
    (Celery's autodiscovery runs when a worker starts), so the first lookup imports them."""
    tasks = current_app.tasks
    if name not in tasks:
        current_app.loader.import_default_modules()
    return tasks[name]


def publish(task: str, args: tuple, countdown: float = 0, *, private: bool = False) -> None:
    try:
        options = {"countdown": countdown} if countdown else {}
        registered_task(task).apply_async(
            args=args, retry=True, retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5}, **options
        )
    except (BrokerUnavailable, OSError) as exc:
        if private:  # nothing sweeps these up: the visitor asks again
            logger.warning("Broker unreachable, %s not sent (%s)", task, type(exc).__name__)
        else:
            logger.warning("Broker unreachable, %s%s left for the sweep (%s)", task, args, type(exc).__name__)
