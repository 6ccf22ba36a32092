"""The patient pages' work that must not run inside the request: what it found would show in how
long the page took to answer (README "Security notes")."""

import datetime
import logging

from celery import shared_task
from django.utils import timezone

from patients.models import Practice

from portal.pages import access_requests, account

logger = logging.getLogger(__name__)


@shared_task(name="portal.send_password_reset", ignore_result=True)
def send_password_reset(email: str) -> None:
    account.send_reset_email(email)


@shared_task(name="portal.handle_access_request", ignore_result=True)
def handle_access_request(practice_id: int, data: dict) -> None:
    practice = Practice.objects.filter(pk=practice_id, self_signup_enabled=True).first()
    if practice is None:  # turned off since the request was made
        return
    fields = {**data, "date_of_birth": datetime.date.fromisoformat(data["date_of_birth"])}
    outcome = access_requests.request_access(practice=practice, now=timezone.now(), **fields)
    logger.info("access request for practice %s: %s", practice.pk, outcome)
