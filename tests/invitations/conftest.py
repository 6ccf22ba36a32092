import pytest
from django.core import mail
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _anymail_test_backend_and_clean_state(settings):
    # Django's test runner (and so pytest-django) replaces EMAIL_BACKEND with locmem; these
    # tests need anymail's test backend, which records what the provider would receive.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    # Rate limits live in the cache; every test starts with none counted.
    cache.clear()
    mail.outbox = []
    yield
    cache.clear()
