"""The Celery application. Settings live in Django settings under the CELERY_ namespace."""

import logging
import os
import sys

from celery import Celery
from celery.signals import beat_init, celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")

app = Celery("portal_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


@celeryd_init.connect
@beat_init.connect
def refuse_unsafe_production_config(**kwargs) -> None:
    """A worker or beat with an unsafe production configuration does not start. (Celery logs and
    swallows exceptions from signal handlers, so this exits explicitly.)"""
    # Imported when a worker or beat starts: this module is imported before Django is set up.
    from django.core.exceptions import ImproperlyConfigured

    from portal_project.checks import require_production_config

    try:
        require_production_config()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Refusing to start: {exc}\n")
        raise SystemExit(1) from exc


@beat_init.connect
def record_beat_start(**kwargs) -> None:
    """The system status page counts a job that has not run yet as due one interval after beat
    started, instead of overdue from the first minute."""
    # Imported when beat starts: this module is imported before Django is set up.
    import django
    from django.db import DatabaseError

    django.setup()
    from patients.jobs import record_beat_start as record

    try:
        record()
    except DatabaseError as exc:  # e.g. not migrated yet: the page then says beat has not reported
        logger.warning("Could not record that celery beat started: %s", exc)


@app.task(name="portal.ping", ignore_result=False)
def ping() -> str:
    """Round trip check used by tests and ops: a worker answers 'pong'."""
    return "pong"
