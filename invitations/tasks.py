"""Thin Celery entry points: take ids, read the clock once, call a service."""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from patients.jobs import tracked_job

from invitations import representatives, services
from invitations.bulk import runs
from invitations.bulk import chunks
from invitations import adoption
from invitations.texts import delivery

logger = logging.getLogger(__name__)

SEND_MAX_RETRIES = settings.PORTAL_SEND_MAX_RETRIES


def retry_delay(retries: int) -> float:
    """Seconds before retry number `retries + 1`: 30 s, 1 min, 2 min ... capped at 30 min
    (the base is PORTAL_SEND_RETRY_BASE_SECONDS)."""
    return min(settings.PORTAL_SEND_RETRY_BASE_SECONDS * 2**retries, 1800)


@shared_task(bind=True, name="invitations.send_invitation", max_retries=SEND_MAX_RETRIES, acks_late=True)
def send_invitation(self, invitation_id: int) -> str:
    try:
        return services.deliver(invitation_id, now=timezone.now())
    except services.TransientSendError as exc:
        if self.request.retries >= self.max_retries:
            services.give_up_sending(invitation_id, now=timezone.now(), reason=str(exc))
            return "failed"
        logger.info("invitation %s: email service error, retrying", invitation_id)
        raise self.retry(exc=exc, countdown=max(retry_delay(self.request.retries), exc.retry_after or 0))


@shared_task(bind=True, name="invitations.send_invitation_text", max_retries=SEND_MAX_RETRIES, acks_late=True)
def send_invitation_text(self, invitation_id: int) -> str:
    try:
        return delivery.deliver_text(invitation_id, now=timezone.now())
    except services.TransientSendError as exc:
        if self.request.retries >= self.max_retries:
            delivery.give_up_text(invitation_id, now=timezone.now(), reason=str(exc))
            return "failed"
        logger.info("invitation %s: text service error, retrying", invitation_id)
        raise self.retry(exc=exc, countdown=max(retry_delay(self.request.retries), exc.retry_after or 0))


@shared_task(name="invitations.expire_due")
@tracked_job("invitations.expire_due")
def expire_due_invitations() -> int:
    """Every 15 minutes: mark run-out links expired in bulk (links already stop working on
    their own at expiry; this keeps lists, filters and counts right)."""
    return services.expire_due(now=timezone.now())


@shared_task(name="invitations.requeue_unsent")
@tracked_job("invitations.requeue_unsent")
def requeue_unsent_invitations() -> int:
    """Every 5 minutes: send again the emails and texts a lost task (say, the broker was down)
    left pending."""
    now = timezone.now()
    return services.requeue_unsent(now=now) + delivery.requeue_unsent_texts(now=now)


# -- family and caregiver access: see invitations.representatives ------------------------------------


@shared_task(name="invitations.end_representative_access")
@tracked_job("invitations.end_representative_access")
def end_representative_access() -> int:
    """Every hour: end parents' access to patients who came of age (on their practice's date) and any
    access past its end date, exactly once each; remind patients of caregiver access ending soon."""
    return representatives.end_due(now=timezone.now())


@shared_task(name="invitations.send_access_notice", acks_late=True)
def send_access_notice(access_id: int, kind: str, invited: bool = False) -> str:
    return representatives.send_notice(access_id, kind, now=timezone.now(), invited=invited)


@shared_task(name="invitations.welcome_new_adult", acks_late=True)
def welcome_new_adult(access_id: int) -> str:
    return representatives.welcome_new_adult(access_id, now=timezone.now())


# -- bulk runs (Activate Now, monthly re-invite): see invitations.bulk.runs --------------------------

BULK_CHUNK_MAX_RETRIES = 6


@shared_task(bind=True, name="invitations.process_bulk_chunk", max_retries=BULK_CHUNK_MAX_RETRIES, acks_late=True)
def process_bulk_chunk(self, chunk_id: int) -> str:
    try:
        return chunks.process_chunk(chunk_id, now=timezone.now())
    except chunks.ChunkDeferred as exc:
        if self.request.retries >= self.max_retries:
            # The chunk stays pending; the resume sweep tries it again later.
            logger.warning("bulk chunk %s: email service unreachable, left for the sweep", chunk_id)
            return "deferred"
        raise self.retry(exc=exc, countdown=retry_delay(self.request.retries))


@shared_task(name="invitations.plan_bulk_run", acks_late=True)
def plan_bulk_run(run_id: int) -> bool:
    """Right after Activate Now is confirmed: count the skips and split the run into chunks."""
    return runs.plan_run(run_id, now=timezone.now())


@shared_task(name="invitations.resume_bulk_runs")
@tracked_job("invitations.resume_bulk_runs")
def resume_bulk_runs() -> int:
    """Every 5 minutes: enqueue chunks a dead worker left behind; close finished runs."""
    return runs.resume_stalled(now=timezone.now())


@shared_task(name="invitations.start_monthly_reinvites")
@tracked_job("invitations.start_monthly_reinvites")
def start_monthly_reinvites() -> int:
    """Hourly: start the monthly re-invite of each practice whose day has come in its time zone."""
    return runs.start_due_monthly_runs(now=timezone.now())


# -- the portal access dashboard's stored figures: see invitations.adoption -------------------


@shared_task(name="invitations.refresh_practice_figures")
def refresh_practice_figures(practice_id: int) -> bool:
    """Recount one practice's figures ("Refresh now", a finished bulk run, a switch change or a
    page that found them old). A redelivery after the recount landed does nothing."""
    return adoption.refresh_requested(practice_id, now=timezone.now())


#: The sweep starts no new count after this long, well inside the task's soft time limit (a count
#: of a million patients takes about 10 s).
FIGURES_SWEEP_SECONDS = min(180, settings.CELERY_TASK_SOFT_TIME_LIMIT // 2)


@shared_task(name="invitations.refresh_figures")
@tracked_job("invitations.refresh_figures")
def refresh_all_practice_figures() -> int:
    """Every 10 minutes: recount each practice's figures that are older than 9 minutes (or were
    never counted), one practice at a time, so pages and Activate Now read them at once."""
    started = time.monotonic()
    refreshed = 0
    for practice_id in adoption.stale_practice_ids(now=timezone.now()):
        if time.monotonic() - started > FIGURES_SWEEP_SECONDS:
            break  # the oldest went first; the next run carries on with the rest
        # The clock is read per practice: each count is its own operation, and a long sweep
        # should not date later practices' figures to when it started.
        refreshed += adoption.refresh_if_stale(practice_id, now=timezone.now())
    return refreshed
