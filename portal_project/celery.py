"""The Celery application. Settings live in Django settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal_project.settings")

app = Celery("portal_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="portal.ping", ignore_result=False)
def ping() -> str:
    """Round trip check used by tests and ops: a worker answers 'pong'."""
    return "pong"
