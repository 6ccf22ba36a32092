"""Email backends for fault injection (used by worker processes started in tests)."""

import fcntl
import os
import time

from anymail.exceptions import AnymailAPIError
from django.core import mail
from django.core.mail.backends import filebased, locmem
from django.core.mail.backends.base import BaseEmailBackend


class UnavailableBackend(BaseEmailBackend):
    """An email service that answers 503 Service Unavailable to every message."""

    def send_messages(self, email_messages):
        raise AnymailAPIError("Service Unavailable: try again later", status_code=503)


class HangingFileBackend(filebased.EmailBackend):
    """Writes emails like the file backend until FAULT_HANG_AFTER messages have gone out in all,
    then blocks before writing the next one, so a test can kill the worker at a known point:
    every email written so far is complete, and none is half-sent."""

    def send_messages(self, email_messages):
        for message in email_messages:
            with open(os.environ["FAULT_COUNTER_FILE"], "a+") as counter:
                fcntl.flock(counter, fcntl.LOCK_EX)
                counter.seek(0)
                attempts = len(counter.read())
                counter.write("x")
            if attempts >= int(os.environ["FAULT_HANG_AFTER"]):
                time.sleep(3600)  # the worker is killed while it waits here
            super().send_messages([message])
        return len(email_messages)


class WorkerDied(BaseException):
    """Stands for SIGKILL in a test's own process: raised from inside a send, it is no Exception,
    so nothing in the chunk gets to clean up."""


class DyingBackend(locmem.EmailBackend):
    """Accepts `survive` messages (counted in django.core.mail.outbox), then the worker dies. Set
    `DyingBackend.survive` before the chunk runs, and to a large number for the next worker."""

    survive = 0

    def send_messages(self, messages):
        if len(mail.outbox) >= DyingBackend.survive:
            raise WorkerDied()
        return super().send_messages(messages)
