"""Celery entry points: thin, take ids, idempotent (services and digests claim rows before sending)."""

from celery import shared_task

from patients.jobs import tracked_job

from . import digests, services

RETRY_DELAYS = (60, 300)  # seconds before the 2nd and 3rd attempt of a failed send
# The service fails the row itself on its last attempt; the task only has to offer the others.
MAX_RETRIES = services.MAX_SEND_ATTEMPTS - 1


def retry_countdown(retries: int, exc: "services.RetryLater") -> float:
    return max(RETRY_DELAYS[min(retries, len(RETRY_DELAYS) - 1)], exc.retry_after or 0)


@shared_task(bind=True, max_retries=MAX_RETRIES, name="notifications.send_delivery")
def send_delivery(self, delivery_id: int) -> str:
    try:
        return services.deliver_alert(delivery_id)
    except services.RetryLater as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries, exc))


@shared_task(name="notifications.sweep")
@tracked_job("notifications.sweep")
def sweep() -> dict:
    """Every 15 minutes: 14-day and 48-hour alerts that are due, lost and interrupted sends."""
    report = services.sweep(now=services._now())
    return vars(report)


@shared_task(name="notifications.send_due_digests")
@tracked_job("notifications.send_due_digests")
def send_due_digests() -> int:
    """Hourly: enqueue one digest per member and office whose daily digest time has passed."""
    due = digests.digests_due(now=services._now())
    for user_id, practice_id in due:
        send_digest.delay(user_id, practice_id)
    return len(due)


@shared_task(bind=True, max_retries=MAX_RETRIES, name="notifications.send_digest")
def send_digest(self, user_id: int, practice_id: int) -> str:
    try:
        return digests.send_digest(user_id=user_id, practice_id=practice_id)
    except services.RetryLater as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries, exc))
