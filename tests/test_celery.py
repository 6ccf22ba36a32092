"""Real Celery workers: a task round trip over Redis and over the embedded filesystem broker."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import redis_url

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "from portal_project.celery import ping; print(ping.delay().get(timeout=45))"


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal_project.settings",
        DJANGO_DEBUG="true",
        PORTAL_VAR_DIR=str(tmp_path / "var"),
        **extra,
    )
    return env


def _round_trip(env) -> str:
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", "solo", "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        client = subprocess.run([sys.executable, "-c", CLIENT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
        assert client.returncode == 0, client.stderr[-2000:]
        return client.stdout.strip()
    finally:
        worker.kill()  # the answer is in; a warm shutdown would only cost seconds
        worker.wait(timeout=20)


@pytest.mark.redis
@pytest.mark.worker
def test_a_worker_answers_over_redis(tmp_path):
    url = redis_url()
    assert _round_trip(_env(tmp_path, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url)) == "pong"


@pytest.mark.worker
def test_a_worker_answers_over_the_embedded_broker(tmp_path):
    assert _round_trip(_env(tmp_path)) == "pong"


# -- the front desk first: two queues, every worker consumes both, interactive first --------------

ORDER_CLIENT = """
import django
django.setup()
from portal_project.celery import app, ping
app.control.purge()
bulk = [ping.apply_async(queue="bulk").id for _ in range(8)]
interactive = [ping.apply_async().id for _ in range(3)]
print(" ".join(bulk)); print(" ".join(interactive))
"""


def _run_queued_then_start_worker(env, tmp_path) -> tuple[list[str], list[str], list[str]]:
    """Queue 8 pings on the bulk queue, then 3 on the interactive queue, then start one worker
    process (one task at a time): the order the worker ran them in."""
    import re
    import time

    queued = subprocess.run([sys.executable, "-c", ORDER_CLIENT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)
    assert queued.returncode == 0, queued.stderr[-2000:]
    bulk, interactive = (line.split() for line in queued.stdout.strip().splitlines()[-2:])
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done = re.findall(r"Task portal\.ping\[([0-9a-f-]+)\] succeeded", log.read_text())
            if len(done) == 11:
                return bulk, interactive, done
            time.sleep(0.2)
        raise AssertionError("the worker did not run every task:\n" + log.read_text()[-3000:])
    finally:
        worker.kill()
        worker.wait(timeout=20)


@pytest.mark.redis
@pytest.mark.worker
def test_a_worker_on_redis_runs_every_waiting_interactive_task_before_bulk_ones(tmp_path):
    url = redis_url()
    bulk, interactive, done = _run_queued_then_start_worker(
        _env(tmp_path, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url), tmp_path
    )
    assert set(done) == set(bulk) | set(interactive)  # one worker consumes both queues
    assert set(done[:3]) == set(interactive), done  # although they were queued last


@pytest.mark.worker
def test_a_worker_on_the_embedded_broker_consumes_both_queues(tmp_path):
    bulk, interactive, done = _run_queued_then_start_worker(_env(tmp_path), tmp_path)
    assert set(done) == set(bulk) | set(interactive)
    assert done[0] in interactive  # taken in turn there: an interactive task waits for one bulk task at most


def test_the_front_desks_tasks_are_interactive_and_bulk_work_is_not():
    from django.conf import settings

    from core import queue
    from portal_project.celery import app

    def routed(name: str) -> str:
        return app.amqp.router.route({}, name)["queue"].name

    assert [q.name for q in settings.CELERY_TASK_QUEUES] == [queue.INTERACTIVE_QUEUE, queue.BULK_QUEUE]
    for name in ("invitations.send_invitation", "invitations.send_invitation_text", "notifications.send_delivery",
                 "patients.send_staff_password_reset", "portal.heartbeat", "invitations.requeue_unsent"):
        assert routed(name) == queue.INTERACTIVE_QUEUE, name
    for name in ("invitations.process_bulk_chunk", "invitations.plan_bulk_run", "invitations.refresh_figures",
                 "invitations.expire_due", "notifications.send_digest"):
        assert routed(name) == queue.BULK_QUEUE, name
    # Every task the apps define is routed to a queue a worker consumes.
    app.loader.import_default_modules()
    for name in app.tasks:
        if not name.startswith("celery."):
            assert routed(name) in (queue.INTERACTIVE_QUEUE, queue.BULK_QUEUE), name


def test_work_enqueued_in_the_background_goes_to_the_bulk_queue(monkeypatch, django_capture_on_commit_callbacks, db):
    from core import queue

    sent = []
    monkeypatch.setattr(queue, "publish", lambda task, args, countdown=0, **options: sent.append((task, options.get("queue"))))
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue_on_commit("notifications.send_delivery", 1)
        with queue.in_background():
            queue.enqueue_on_commit("notifications.send_delivery", 2)
    assert sent == [("notifications.send_delivery", None), ("notifications.send_delivery", queue.BULK_QUEUE)]
