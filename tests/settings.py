"""Test settings: the real settings, read from the environment like production, plus a few
test-only switches. DATABASE_URL and CELERY_BROKER_URL from the environment are honoured, so
CI runs the same suite on PostgreSQL and Redis."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("PORTAL_VAR_DIR", os.path.join(tempfile.gettempdir(), "practice-portal-tests"))
os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")

from portal_project.settings import *  # noqa: E402,F401,F403

EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
PORTAL_BASE_URL = "https://portal.example.test"
