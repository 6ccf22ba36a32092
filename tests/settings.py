"""Test settings: the real settings, read from the environment like production, plus a few
test-only switches. DATABASE_URL and CELERY_BROKER_URL from the environment are honoured, so
CI runs the same suite on PostgreSQL and Redis."""

import os
import tempfile
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("PORTAL_VAR_DIR", os.path.join(tempfile.gettempdir(), "practice-portal-tests"))


def _redis_database(url: str, offset: int) -> str:
    parts = urlsplit(url)
    return parts._replace(path=f"/{(int(parts.path.strip('/') or 0) + offset) % 16}").geturl()


# pytest-xdist runs the suite in several processes (PYTEST_XDIST_WORKER = gw0, gw1, ...): each gets
# its own var folder (SQLite test database, filesystem broker, mail files) and its own Redis database,
# so one process's Celery workers never take another's tasks and no test clears another's counters
# (pytest-django gives each its own PostgreSQL test database). Done once: the worker processes and
# servers a test starts inherit the result.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _xdist_worker and os.environ.get("PORTAL_TEST_XDIST_WORKER") != _xdist_worker:
    os.environ["PORTAL_TEST_XDIST_WORKER"] = _xdist_worker
    _number = int(_xdist_worker.removeprefix("gw"))
    os.environ["PORTAL_VAR_DIR"] += f"-{_xdist_worker}"
    for _name, _default in (("CELERY_BROKER_URL", ""), ("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")):
        _url = os.environ.get(_name, _default)
        if _url.startswith("redis://"):
            os.environ[_name] = _redis_database(_url, _number)
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")

from portal_project.settings import *  # noqa: E402,F401,F403

# Browser tests run a real worker in another process; it writes emails to files the test reads.
EMAIL_BACKEND = os.environ.get("TEST_EMAIL_BACKEND", "anymail.backends.test.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("TEST_EMAIL_FILE_PATH", str(EMAIL_FILE_PATH))  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory, so that a worker process can share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
PORTAL_BASE_URL = "https://portal.example.test"
