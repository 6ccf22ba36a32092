"""Shared fixtures and the rule for service-bound tests.

Tests marked postgres / redis / worker / browser need a real service. On a laptop without it
they are skipped with the reason; under CI=true a missing service fails the test instead, so
CI can never pass by skipping them.
"""

import os
import shutil
import socket
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis://") else os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def count_limits_in(store: str, monkeypatch) -> str:
    """Point the shared limits (core.throttle) at the database or at Redis for one test; the tests
    that run once per store call this from their own parametrised fixture."""
    from core import throttle

    url = redis_url() if store == "redis" else "database"
    monkeypatch.setattr(throttle, "store_url", lambda: url)
    return store


def redis_reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres"):
        require(
            settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
            "needs PostgreSQL: set DATABASE_URL=postgres://...",
        )
    if item.get_closest_marker("redis"):
        require(redis_reachable(redis_url()), f"needs Redis at {redis_url()}")
    if item.get_closest_marker("browser"):
        require(
            bool(shutil.which("chromium") or os.path.exists("/usr/bin/chromium")),
            "needs Debian's chromium (apt-get install chromium chromium-driver)",
        )


# -- the clock and Celery ------------------------------------------------------------------------


@pytest.fixture
def frozen():
    """The clock stopped at tests.clock.NOW (time-machine); the traveller can move it."""
    import time_machine

    from tests.clock import NOW

    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ticking():
    """The clock running from tests.clock.NOW, for code that measures waits on the wall clock
    (the shared sending rate's pauses, a provider's latency)."""
    import time_machine

    from tests.clock import NOW

    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def eager_celery():
    """Tasks run in this process when they are enqueued (after commit, with
    django_capture_on_commit_callbacks(execute=True)), and a task's exception fails the test."""
    from portal_project.celery import app as celery_app

    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


# -- the database and the team ------------------------------------------------------------------


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def practice():
    """Maple Street Dental: the one practice most tests need (practice_a and practice_b where
    scoping between two matters)."""
    from tests.factories import PracticeFactory

    return PracticeFactory(name="Maple Street Dental")


@pytest.fixture
def practice_a():
    from tests.factories import PracticeFactory

    return PracticeFactory(name="Practice A")


@pytest.fixture
def practice_b():
    from tests.factories import PracticeFactory

    return PracticeFactory(name="Practice B")


@pytest.fixture
def front_desk_a(practice_a):
    from patients.models import Role
    from tests.factories import staff_member

    return staff_member(practice_a, Role.FRONT_DESK, username="frontdesk_a")


@pytest.fixture
def manager_a(practice_a):
    from patients.models import Role
    from tests.factories import staff_member

    return staff_member(practice_a, Role.MANAGER, username="manager_a", email="manager@staff.example")


@pytest.fixture
def manager_client(client, manager_a):
    """Signed in as Practice A's manager (who may run Activate Now and edit the templates)."""
    client.force_login(manager_a)
    return client


@pytest.fixture
def admin_a(practice_a):
    from patients.models import Role
    from tests.factories import staff_member

    return staff_member(practice_a, Role.ADMIN, username="admin_a")


@pytest.fixture
def client_a(client, front_desk_a):
    client.force_login(front_desk_a)
    return client


# -- email providers -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _standin_server():
    from tests.provider_standin import StandIn

    server = StandIn().start()
    yield server
    server.stop()


@pytest.fixture
def standin(_standin_server):
    """The local stand-in of the providers' APIs (tests/provider_standin/), reset for this
    test: no latency, no limit, nothing kept from other tests."""
    _standin_server.reset()
    return _standin_server


@pytest.fixture
def use_provider(standin, settings):
    """use_provider("postmark"): send through anymail's real backend for that provider, pointed
    at the stand-in."""

    def use(name: str):
        configured = standin.anymail_settings(name)
        settings.EMAIL_BACKEND = configured["EMAIL_BACKEND"]
        settings.ANYMAIL = configured["ANYMAIL"]
        return standin

    return use


@pytest.fixture(autouse=True)
def _force_login_gives_the_second_factor(monkeypatch):
    """`client.force_login(user)` stands for a whole staff sign-in: the password and, for an account
    that must give one (a superuser, a member of a practice that requires it), the second factor
    through an authenticator device made for the test. Tests of two-factor sign-in itself sign in
    through the pages, or use `force_login_password_only`."""

    def force_login(self, user, backend=None):
        force_login_password_only(self, user, backend)
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from patients.staff_auth.two_factor import NEEDED_SESSION_KEY

        session = self.session
        if session.get(NEEDED_SESSION_KEY):
            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            device = device or TOTPDevice.objects.create(user=user, name="Test authenticator", confirmed=True)
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()

    monkeypatch.setattr(Client, "force_login", force_login)


_ORIGINAL_FORCE_LOGIN = Client.force_login


@pytest.fixture(autouse=True)
def _sessions_never_idle_out(request, monkeypatch, settings):
    """Many tests move the clock by hours or days with one signed-in client (expiry, re-invites,
    digests): their sessions do not end for idleness. Tests marked `sessions_idle_out`
    (tests/security/test_idle_sessions.py, which tests that they do) keep the real times."""
    if request.node.get_closest_marker("sessions_idle_out"):
        return
    from patients.staff_auth import sessions

    monkeypatch.setattr(sessions, "idle_seconds_for", lambda user: 10 * 365 * 86400)
    settings.PORTAL_SESSION_MAX_HOURS = 10 * 365 * 24


def force_login_password_only(client, user, backend=None):
    """Signed in with the password alone: a second factor still owed is asked for."""
    _ORIGINAL_FORCE_LOGIN(client, user, backend)


@pytest.fixture(autouse=True)
def _fresh_shared_counters():
    """Every test starts with the provider account's shared rate and the request limits' counters
    untouched (in CI they live in Redis, which outlives a test; in the database they roll back)."""
    from core import throttle
    from core.sending import ratelimit

    def forget():
        ratelimit._limiter.cache_clear()
        for store in {ratelimit.store_url(), throttle.store_url()}:
            if store.startswith("redis") and redis_reachable(store):
                import redis

                client = redis.Redis.from_url(store)
                client.delete("portal:send-rate:email")
                for name in client.scan_iter("portal:hits:*"):
                    client.delete(name)

    forget()
    yield
    forget()


SERVICE_MARKERS = ("postgres", "redis", "worker", "browser")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a service-bound test that skipped for any reason is reported as failed."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and any(item.get_closest_marker(m) for m in SERVICE_MARKERS):
        report.outcome = "failed"
        report.longrepr = f"CI=true: service-bound test was skipped ({report.longrepr})"
