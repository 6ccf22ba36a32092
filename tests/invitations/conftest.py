import pytest
from django.core import mail


@pytest.fixture(autouse=True)
def _anymail_test_backend_and_clean_state(settings):
    # Django's test runner (and so pytest-django) replaces EMAIL_BACKEND with locmem; these
    # tests need anymail's test backend, which records what the provider would receive.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mail.outbox = []
    yield


@pytest.fixture
def frozen():
    """The clock stopped at the tests' NOW (time-machine); the traveller can move it."""
    import time_machine

    from tests.invitations.factories import NOW

    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def eager_celery():
    from portal_project.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
