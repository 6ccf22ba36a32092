"""Redis is stopped when Activate Now is confirmed: the run is recorded, the page says the work is
queued, and once Redis is back the sweep and a real worker finish it with nothing lost or doubled.

Uses a Redis server of its own (another port), so the machine's Redis is never touched."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from invitations.models.bulk_runs import BulkRun, BulkRunStatus
from patients.models import Role
from tests.conftest import require
from tests.factories import PatientFactory, PracticeFactory, staff_member
from tests.workers import ROOT, database_url, sent_to, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PORT = 6391
URL = f"redis://127.0.0.1:{PORT}/0"


def _port_open() -> bool:
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=0.3).close()
        return True
    except OSError:
        return False


class PrivateRedis:
    def __init__(self, workdir):
        self.workdir, self.process = workdir, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(_port_open, timeout=10, interval=0.1, message="the private Redis to start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        wait_until(lambda: not _port_open(), timeout=10, interval=0.1, message="the private Redis to stop")


@pytest.fixture
def private_redis(tmp_path):
    require(bool(shutil.which("redis-server")), "needs redis-server on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


# The web request and beat's sweep run in processes of their own, configured for the private
# Redis exactly as production processes are (from the environment).
CONFIRM = """
import json, django
django.setup()
from django.test import Client
from django.contrib.auth import get_user_model
client = Client()
client.force_login(get_user_model().objects.get(username="outage_admin"))
response = client.post("/admin/invitations/bulkrun/portal/%d/activate/")
page = client.get(response["Location"]).content.decode() if response.status_code == 302 else ""
print(json.dumps({"status": response.status_code, "queued": "Queued: the run is recorded" in page}))
"""
SWEEP = """
import datetime, django
django.setup()
from django.utils import timezone
from invitations.bulk import runs
runs.resume_stalled(now=timezone.now() + datetime.timedelta(minutes=20))
"""


def _run(code: str, env: dict) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def test_activate_now_with_redis_down_is_queued_and_completes_once_redis_is_back(private_redis, start_worker, mail_dir):
    practice = PracticeFactory(name="Redis Outage Dental")
    for i in range(60):
        PatientFactory(practice=practice, email=f"r{i}@example.com")
    staff_member(practice, Role.ADMIN, username="outage_admin")
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": URL, "CELERY_RESULT_BACKEND": URL,
    }
    start_worker(CELERY_BROKER_URL=URL, CELERY_RESULT_BACKEND=URL)

    private_redis.stop()
    started = time.monotonic()
    answer = json.loads(_run(CONFIRM % practice.pk, env))
    assert answer == {"status": 302, "queued": True}
    assert time.monotonic() - started < 30  # the request does not hang on the dead broker
    run = BulkRun.objects.get(practice=practice)
    assert run.status == BulkRunStatus.RUNNING and sent_to(mail_dir) == {}

    private_redis.start()  # Redis is back; beat's resume sweep finds the work

    def finished() -> bool:
        _run(SWEEP, env)
        run.refresh_from_db()
        return run.status == BulkRunStatus.DONE

    wait_until(finished, timeout=120, interval=2, message="the run to finish")
    counts = sent_to(mail_dir)
    assert len(counts) == 60 and set(counts.values()) == {1}
