import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import DatabaseError, close_old_connections

from patients.jobs import record_heartbeat
from patients.staff_auth import reset, welcome

logger = logging.getLogger(__name__)


@shared_task(name="portal.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat sends this every minute; whichever worker runs it records that it is alive."""
    record_heartbeat(heartbeat.request.hostname or "unknown")


@worker_ready.connect(dispatch_uid="patients.heartbeat_on_start")
def heartbeat_on_start(sender, **kwargs) -> None:
    """A worker that just started is alive now, not only after beat's first minute."""
    try:
        record_heartbeat(getattr(sender, "hostname", None) or "unknown")
    except DatabaseError as exc:  # e.g. not migrated yet: beat's heartbeat will follow
        logger.warning("Could not record the worker's start-up heartbeat: %s", exc)
    finally:
        close_old_connections()


@shared_task(name="patients.send_staff_password_reset", ignore_result=True)
def send_staff_password_reset(email: str) -> None:
    """A staff password-reset email, sent here rather than in the request (see staff_auth.reset)."""
    reset.send_reset_email(email)


@shared_task(name=welcome.SEND_TASK, ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=3)
def send_staff_welcome(membership_id: int, added_by_id, new_account: bool) -> None:
    """The email a new team member gets (staff_auth.welcome); retried while the email service is unreachable."""
    welcome.send_welcome_email(membership_id, added_by_id, new_account)
