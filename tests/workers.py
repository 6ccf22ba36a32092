"""A real Celery worker process for tests: it shares the test database and the configured broker,
and writes emails as files the test can read (like a patient's inbox)."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The test database, for another process (a worker, gunicorn)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


@pytest.fixture
def mail_dir(tmp_path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


class WorkerProcess:
    """One `celery worker` process; `kill()` is a SIGKILL of it and its pool, as a crash would be."""

    def __init__(self, env: dict, log_path: Path, concurrency: int = 4, pool: str = "threads"):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", pool,
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _wait_for_ready(log_path, self.process)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            try:
                # A warm shutdown is asked of the main process only: signalled too, prefork's
                # children die first and the main process waits for them in vain.
                if sig == signal.SIGKILL:
                    os.killpg(self.process.pid, sig)
                else:
                    self.process.send_signal(sig)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()


def purge_broker() -> None:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("filesystem://"):
        queue = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(queue, ignore_errors=True)
        queue.mkdir(parents=True, exist_ok=True)
    else:
        from portal_project.celery import app

        app.control.purge()


@pytest.fixture
def start_worker(transactional_db, mail_dir, tmp_path):
    """Start real workers on the test database and the configured broker: start_worker(**env)."""
    purge_broker()
    started: list[WorkerProcess] = []

    def start(concurrency: int = 4, pool: str = "threads", **extra_env: str) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "TEST_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "TEST_EMAIL_FILE_PATH": str(mail_dir),
            **extra_env,
        }
        # prefork enforces the task time limits (the threads pool cannot interrupt a thread).
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log", concurrency, pool)
        started.append(worker)
        return worker

    yield start
    # The test is over, so what its workers still hold no longer matters: killed at once, as a
    # warm shutdown takes seconds each (the next test purges the broker before starting its own).
    for worker in started:
        worker.kill()


@pytest.fixture
def celery_worker(start_worker) -> WorkerProcess:
    """A real `celery worker` process on the test database and the configured broker."""
    return start_worker()


def _wait_for_ready(log_path: Path, process, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("worker exited:\n" + log_path.read_text()[-3000:])
        if "ready." in log_path.read_text():
            return
        time.sleep(0.2)
    raise RuntimeError("worker did not start:\n" + log_path.read_text()[-3000:])


def read_mail(mail_dir: Path, *, to: str, timeout: float = 30) -> str:
    """Wait for an email to `to` written by the worker's file backend; returns the raw message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.log")):
            text = path.read_text()
            for message in text.split("-" * 79):
                if f"To: {to}" in message:
                    return message
        time.sleep(0.3)
    raise AssertionError(f"no email to {to} within {timeout}s")


def sent_to(mail_dir: Path) -> Counter:
    """How many emails the file backend wrote to each address."""
    counts: Counter = Counter()
    for path in mail_dir.glob("*.log"):
        for message in path.read_text().split("-" * 79):
            for line in message.splitlines():
                if line.startswith("To: "):
                    counts[line[4:].strip()] += 1
                    break
    return counts


def wait_until(condition, *, timeout: float = 60, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def run_beside_an_embedded_worker(tmp_path: Path, code: str, *, timeout: float = 150) -> subprocess.CompletedProcess:
    """The demo stack with nothing configured: a fresh SQLite database and the filesystem broker
    under `tmp_path`, migrated, with a real worker on it while `code` runs in another process.
    `code` can wait for the worker to finish everything with wait_for_the_embedded_worker()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DATABASE_URL", "EMAIL_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="portal_project.settings", DJANGO_DEBUG="true", PORTAL_VAR_DIR=str(tmp_path / "var"),
        **{EMBEDDED_WORKER_LOG: str(tmp_path / "worker.log")},
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal_project", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--without-heartbeat", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        worker.kill()  # `code` has seen what it waited for; a warm shutdown would only cost seconds
        worker.wait(timeout=20)


EMBEDDED_WORKER_LOG = "PORTAL_TEST_WORKER_LOG"
# What a worker logs (at INFO) for each task message it takes, and for each way a run of it ends.
_TASK_LOG_LINE = re.compile(r"\bTask [\w.]+\[[0-9a-f-]+\] (received|succeeded|retry|raised|ignored|INTERNAL)\b")


def embedded_worker_is_idle(log_path: Path, queue_dir: Path) -> bool:
    """No message waits in the filesystem broker's folder and every task message the worker took
    has ended (a retry's new message is taken again later, so it counts as one more received)."""
    before = log_path.read_text()
    waiting = any(queue_dir.glob("*.msg"))
    after = log_path.read_text()
    outcomes = Counter(_TASK_LOG_LINE.findall(after))
    received = outcomes.pop("received", 0)
    return not waiting and before == after and received == sum(outcomes.values())


def wait_for_the_embedded_worker(*, timeout: float = 60) -> None:
    """For the code run by run_beside_an_embedded_worker: return once the worker has run every task
    there is, including any the tasks enqueued and any duplicate delivery, instead of sleeping for
    a guess. Idle twice in a row: a message the worker has taken from the folder but not yet
    logged shows in neither."""
    from django.conf import settings

    log_path = Path(os.environ[EMBEDDED_WORKER_LOG])
    queue_dir = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    idle_in_a_row = 0

    def settled() -> bool:
        nonlocal idle_in_a_row
        idle_in_a_row = idle_in_a_row + 1 if embedded_worker_is_idle(log_path, queue_dir) else 0
        return idle_in_a_row >= 2

    wait_until(settled, timeout=timeout, interval=0.2, message="the embedded worker to run every queued task")


@contextlib.contextmanager
def gunicorn(tmp_path: Path, *, workers: int = 2, **extra_env: str):
    """The WSGI app under real gunicorn worker processes on the test database: yields
    (base URL, path of its log)."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost", **extra_env,
    }
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "portal_project/gunicorn.conf.py", "portal_project.wsgi",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/admin/login/", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("gunicorn did not start:\n" + log_path.read_text()[-3000:])
                    time.sleep(0.2)
            yield base, log_path
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
