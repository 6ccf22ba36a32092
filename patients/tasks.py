from celery import shared_task

from .jobs import record_heartbeat


@shared_task(name="portal.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat sends this every minute; whichever worker runs it records that it is alive."""
    record_heartbeat(heartbeat.request.hostname or "unknown")
