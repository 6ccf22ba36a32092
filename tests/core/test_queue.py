"""Enqueueing by task name (core.queue) from a process that never imported the tasks modules."""

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import sys
import django
django.setup()
from core import queue
assert "notifications.tasks" not in sys.modules and "invitations.tasks" not in sys.modules
print(queue.registered_task("notifications.send_delivery").name)
print(queue.registered_task("invitations.send_invitation").name)
"""


def test_a_web_process_finds_every_app_task_by_name_without_importing_tasks_first(tmp_path):
    # A fresh process, as gunicorn's: Django set up, no worker started, no tasks module imported.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PORTAL_VAR_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["notifications.send_delivery", "invitations.send_invitation"]
