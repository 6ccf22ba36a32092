"""Thin Celery entry points: take ids, read the clock once, call a service."""

import logging

from celery import shared_task
from django.utils import timezone

from patients.jobs import tracked_job

from . import services

logger = logging.getLogger(__name__)

SEND_MAX_RETRIES = 6


def retry_delay(retries: int) -> int:
    """Seconds before retry number `retries + 1`: 30 s, 1 min, 2 min ... capped at 30 min."""
    return min(30 * 2**retries, 1800)


@shared_task(bind=True, name="invitations.send_invitation", max_retries=SEND_MAX_RETRIES, acks_late=True)
def send_invitation(self, invitation_id: int) -> str:
    try:
        return services.deliver(invitation_id, now=timezone.now())
    except services.TransientSendError as exc:
        if self.request.retries >= self.max_retries:
            services.give_up_sending(invitation_id, now=timezone.now(), reason=str(exc))
            return "failed"
        logger.info("invitation %s: email service error, retrying", invitation_id)
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries))


@shared_task(name="invitations.expire_due")
@tracked_job("invitations.expire_due")
def expire_due_invitations() -> int:
    """Every 15 minutes: mark run-out links expired in bulk (links already stop working on
    their own at expiry; this keeps lists, filters and counts right)."""
    return services.expire_due(now=timezone.now())
