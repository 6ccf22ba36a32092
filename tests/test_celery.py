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
