"""One chunk of a bulk run (up to `CHUNK_SIZE` patients, one Celery task): create, claim and
send its invitations set-based, record what the email service did, hand on what it did not take.
The run around the chunks (who is targeted, planning, progress, the resume sweep) is
`invitations.bulk`.

* A chunk is processed by one worker at a time: its row is claimed with a conditional ``UPDATE``
  (pending, or claimed longer ago than `CHUNK_LEASE`). A duplicate delivery of the task finds the
  chunk taken or done and does nothing.
* One invitation per patient: the chunk locks its patients' rows (as a single invite does), then
  re-checks eligibility in SQL, which excludes every patient with an open invitation, including
  the ones an earlier, interrupted attempt of the same chunk created. The partial unique
  constraints on invitations are the last line of defence.
* No email twice: every invitation is claimed in the database (token hash + ``sending_started_at``,
  `Invitation.objects.create_claimed_many` / `claim_many`) before its email goes out, and marked
  sent right after, in batches (`MARK_SENT_EVERY_SECONDS` / `MARK_SENT_EVERY_MESSAGES`). A worker
  that dies between the email service accepting a message and that batch being marked leaves those
  claims to lapse, and the resumed chunk sends them again with a fresh link: the same
  at-least-once trade-off as a single send (`Invitation.claim_for_sending`), limited to at most a
  couple of seconds' worth of emails.
* Sending is `core.sending.outbox`: concurrent calls (or the provider's batch calls) within the
  account's rate shared by every worker; throttled and temporarily failed emails are retried inside
  the chunk. A chunk stops starting emails `SEND_SECONDS` after its task began (inside the task's
  time limit), releases the claims of what it did not send and hands the rest on at once; an email
  service that keeps failing defers the chunk with a backoff. So a run is done only when every
  targeted patient was sent an invitation, failed with a reason, or skipped.

Queries per chunk do not grow with the chunk's size: each step is one statement over the chunk.
"""

import datetime
import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.queue import enqueue_on_commit
from core.sending import outbox
from patients.models import Patient, Practice, normalise_email

from . import dashboard, eligibility, emails
from .bulk_models import CHUNK_LEASE, BulkRun, BulkRunChunk, BulkRunKind, BulkRunStatus, BulkRunTick, ChunkStatus
from .emails import Recipient
from .models import SEND_GIVE_UP_AFTER, Invitation, InvitationTemplate, RevokeReason, Source, Status

logger = logging.getLogger(__name__)

#: Sent invitations are marked in the database at least this often while a chunk sends, so a
#: worker that dies mid-chunk can repeat at most this long a stretch of emails.
MARK_SENT_EVERY_SECONDS = 2.0
#: ...or every this many emails, whichever comes first: it bounds what a killed worker can repeat.
MARK_SENT_EVERY_MESSAGES = settings.PORTAL_BULK_MARK_SENT_EVERY
#: The invitations' source for each kind of run.
SOURCE_OF_KIND = {BulkRunKind.ACTIVATE_NOW: Source.BULK, BulkRunKind.MONTHLY: Source.MONTHLY, BulkRunKind.RESEND: Source.BULK_RESEND}
#: A chunk handed back because the account's next sending slot is this far away waits at most
#: this long before asking again (the resume sweep covers longer waits).
MAX_SLOT_WAIT = 300


class ChunkDeferred(Exception):
    """The email service could not be reached; the chunk is put back to be tried again."""


def enqueue(chunk_ids: list[int], *, countdown: float = 0) -> None:
    """Enqueue after commit; a broker outage is logged and the resume sweep enqueues them later."""
    for chunk_id in chunk_ids:
        enqueue_on_commit("invitations.process_bulk_chunk", chunk_id, countdown=countdown)


#: A chunk stops starting new emails this long after its task began, well inside the task's soft
#: time limit (a provider call in flight then has its whole timeout to finish), records what it
#: sent and hands the rest on at once (see `_hand_on`).
SEND_SECONDS = settings.PORTAL_BULK_SEND_SECONDS


def claim_chunk(chunk_id: int, *, now: datetime.datetime) -> bool:
    # Only the chunk's own columns in the WHERE: PostgreSQL turns a join into an `id IN
    # (subquery)` whose result a waiting UPDATE does not re-check, and every racer would win.
    return bool(
        BulkRunChunk.objects.filter(pk=chunk_id)
        .filter(Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.CLAIMED, claimed_at__lte=now - CHUNK_LEASE))
        .update(status=ChunkStatus.CLAIMED, claimed_at=now, attempts=F("attempts") + 1)
    )


def process_chunk(chunk_id: int, *, now: datetime.datetime) -> str:
    """Create, claim and send the invitations of one chunk. Returns what happened (logs, tests).

    A chunk is done only when each of its patients was sent an invitation, failed with a reason
    or skipped. What the email service did not take before the chunk's time ran out, or refused
    for now, is released and handed on: at once after the deadline ("continued"), after a
    backoff when the service failed (raises ChunkDeferred; the task retries later).
    """
    started = time.monotonic()
    if not claim_chunk(chunk_id, now=now):
        return "not-claimed"
    chunk = BulkRunChunk.objects.select_related("run__practice").get(pk=chunk_id)
    run, practice = chunk.run, chunk.run.practice
    source = SOURCE_OF_KIND[run.kind]
    template = InvitationTemplate.for_practice(practice)
    outgoing = _create_invitations(chunk, source=source, now=now)
    if chunk.attempts > 1:  # only an earlier attempt can have left claims to take over
        outgoing += _reclaim_lapsed(chunk, source=source, now=now)
    _count_invited(chunk, source=source)
    report = _send(outgoing, chunk=chunk, practice=practice, template=template, deadline=started + SEND_SECONDS)
    if not report.left:
        # A safety net: the chunk is done only when none of its invitations is still pending.
        stray = list(_chunk_invitations(chunk, source=source).filter(status=Status.PENDING).values_list("pk", flat=True))
        report.left = [outbox.Item(key=pk, to="") for pk in stray]
    if report.left:
        return _hand_on(chunk, report, claimed_at=now, now=timezone.now())
    _finish_chunk(chunk, source=source, claimed_at=now, now=timezone.now())
    finish_run_if_done(run.pk, now=timezone.now())
    return "done"


def _chunk_invitations(chunk: BulkRunChunk, *, source: str):
    """The invitations this run made for the chunk's patients (on any attempt)."""
    return Invitation.objects.filter(
        patient_id__in=chunk.patient_ids, source=source, created_at__gte=chunk.run.created_at,
        practice_id=chunk.run.practice_id,
    )


def _create_invitations(chunk: BulkRunChunk, *, source: str, now: datetime.datetime) -> list[Recipient]:
    run, practice = chunk.run, chunk.run.practice
    ids = chunk.patient_ids
    with transaction.atomic():
        # The same lock a single invite takes, so the two cannot both invite one patient.
        list(Patient.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))
        # Links that ran out but the sweep has not marked yet still hold the "one open
        # invitation per patient" constraint.
        Invitation.objects.filter(patient_id__in=ids).expire_due(now, batch_size=len(ids) + 1)
        resend = run.kind == BulkRunKind.RESEND
        patients = Patient.objects.filter(pk__in=ids, practice_id=practice.pk)
        if chunk.attempts > 1:
            # One invitation per patient per run: a patient this run already invited (sent, failed
            # or waiting) is never invited again by a later attempt, whatever the rules say now.
            patients = patients.exclude(pk__in=_chunk_invitations(chunk, source=source).values("patient_id"))
        rows = list(
            eligibility.eligible(patients, now=now, for_resend=resend)
            .values_list("pk", "first_name", "email", "self_signup_unverified")
        )
        if not rows:
            return []
        if resend:  # the old link stops working the moment the new one exists
            Invitation.objects.filter(patient_id__in=[pk for pk, *_ in rows]).revoke_open(
                reason=RevokeReason.RESENT, now=now, actor_id=run.started_by_id,
            )
        made = Invitation.objects.create_claimed_many(
            [(pk, normalise_email(email)) for pk, _first_name, email, _unverified in rows],
            practice=practice, source=source, actor_id=run.started_by_id, now=now,
        )
    expires_at = practice.link_expires_at(now)
    return [
        Recipient(
            made[pk][0], normalise_email(email), emails.greeting_name(first_name, unverified=unverified),
            made[pk][1], made[pk][2], expires_at,
        )
        for pk, first_name, email, unverified in rows
    ]


def _reclaim_lapsed(chunk: BulkRunChunk, *, source: str, now: datetime.datetime) -> list[Recipient]:
    """Pending invitations an earlier attempt of this chunk created but did not finish sending
    (its worker died, or it handed them on)."""
    claimed = (
        _chunk_invitations(chunk, source=source)
        .select_related("patient").only("public_id", "email", "expires_at", "patient__first_name", "patient__self_signup_unverified")
        .claim_many(now)
    )
    return [
        Recipient(
            i.pk, i.email, emails.greeting_name(i.patient.first_name, unverified=i.patient.self_signup_unverified),
            token, i.public_id, i.expires_at,
        )
        for i, token in claimed
    ]


def _count_invited(chunk: BulkRunChunk, *, source: str) -> None:
    """The progress page counts a chunk's skipped patients as soon as its invitations exist."""
    invited = _chunk_invitations(chunk, source=source).count()
    BulkRunChunk.objects.filter(pk=chunk.pk).update(invited=invited, skipped=max(chunk.size - invited, 0))


def _send(outgoing: list[Recipient], *, chunk: BulkRunChunk, practice: Practice, template, deadline: float) -> outbox.Report:
    """Hand the chunk's emails to the email service (`core.sending.outbox`: concurrent calls or
    batches within the account's shared rate), marking them as they go."""
    if not outgoing:
        return outbox.Report()
    composer = emails.ChunkComposer(practice=practice, template=template)
    composer.prepare(outgoing)
    items = [outbox.Item(key=r.pk, to=r.to, payload=r, group=r.expires_at) for r in outgoing]
    sender = outbox.Outbox(
        composer=composer, flush_every_seconds=MARK_SENT_EVERY_SECONDS, flush_every_messages=MARK_SENT_EVERY_MESSAGES,
    )
    return sender.send(items, deadline=deadline, flush=lambda settled: _record(chunk, settled))


def _record(chunk: BulkRunChunk, settled: outbox.Flush) -> None:
    """What the email service took or refused since the last mark: the invitations' new status,
    the chunk's figures and one tick for the progress page's rate, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        sent = Invitation.objects.mark_sent_many(settled.sent, now=now)
        failed = Invitation.objects.fail_many(settled.failed, now=now)
        progressed = len(sent) + len(failed)
        BulkRunChunk.objects.filter(pk=chunk.pk).update(
            sent=F("sent") + len(sent), failed=F("failed") + len(failed), waiting=settled.waiting,
            **({"waiting_since": None} if progressed else {}),
        )
        if progressed:
            BulkRunTick.objects.create(run_id=chunk.run_id, at=now, settled=progressed)


def _hand_on(chunk: BulkRunChunk, report: outbox.Report, *, claimed_at: datetime.datetime, now: datetime.datetime) -> str:
    """Release what the chunk did not send and give the chunk back: at once when its time ran
    out, after a backoff (ChunkDeferred) when the email service failed. A chunk that has sent
    nothing for `SEND_GIVE_UP_AFTER` fails its invitations with the reason instead."""
    problem = report.service_error or next((item.error for item in report.left if item.error), None)
    left = [(item.key, item.error.detail if item.error else "") for item in report.left]
    progressed = bool(report.sent or report.failed)
    with transaction.atomic():
        row = BulkRunChunk.objects.select_for_update().get(pk=chunk.pk)
        if (row.status, row.claimed_at) != (ChunkStatus.CLAIMED, claimed_at):
            # The lease ran out and another worker took the chunk: its claims are not ours.
            logger.warning("bulk chunk %s was taken over while it sent; leaving it to the new owner", chunk.pk)
            return "taken-over"
        since = None if progressed or problem is None else (row.waiting_since or now)
        if since is not None and now - since >= SEND_GIVE_UP_AFTER:
            reason = f"Gave up after the email service refused for {SEND_GIVE_UP_AFTER.seconds // 3600} hours: {problem.detail}"
            Invitation.objects.fail_many([(pk, reason) for pk, _ in left], now=now)
            logger.warning("bulk chunk %s: gave up on %d invitations (%s)", chunk.pk, len(left), problem.detail)
            gave_up = True
        else:
            Invitation.objects.release_many(left, now=now)
            BulkRunChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CLAIMED, claimed_at=claimed_at).update(
                status=ChunkStatus.PENDING, enqueued_at=now, waiting=sum(1 for _, why in left if why), waiting_since=since,
            )
            gave_up = False
        if problem is not None:
            BulkRun.objects.filter(pk=chunk.run_id).update(send_problem=problem.detail[:300], send_problem_at=now)
    if gave_up:
        source = SOURCE_OF_KIND[chunk.run.kind]
        _finish_chunk(chunk, source=source, claimed_at=claimed_at, now=now)
        finish_run_if_done(chunk.run_id, now=now)
        return "gave-up"
    if problem is not None and (report.service_error is not None or not report.deadline_reached):
        raise ChunkDeferred(problem.detail)
    if not progressed and report.slot_wait:
        # Nothing could start before the deadline: the account's next slot is that far away.
        enqueue([chunk.pk], countdown=min(max(report.slot_wait, 1.0), MAX_SLOT_WAIT))
        return "waiting"
    enqueue([chunk.pk])  # its time ran out, not its luck: the next attempt starts at once
    return "continued"


def _finish_chunk(chunk: BulkRunChunk, *, source: str, claimed_at: datetime.datetime, now: datetime.datetime) -> None:
    figures = _chunk_invitations(chunk, source=source).aggregate(
        invited=Count("pk"),
        sent=Count("pk", filter=Q(sent_at__isnull=False)),
        failed=Count("pk", filter=Q(status=Status.FAILED)),
    )
    BulkRunChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CLAIMED, claimed_at=claimed_at).update(
        status=ChunkStatus.DONE, finished_at=now, skipped=max(chunk.size - figures["invited"], 0), waiting=0,
        waiting_since=None, **figures,
    )


def chunk_totals(run_id: int) -> dict[str, int]:
    """Progress of a run: sums over its chunks (one query)."""
    totals = BulkRunChunk.objects.filter(run_id=run_id).aggregate(
        chunks=Count("pk"),
        chunks_done=Count("pk", filter=Q(status=ChunkStatus.DONE)),
        invited=Coalesce(Sum("invited"), 0),
        sent=Coalesce(Sum("sent"), 0),
        failed=Coalesce(Sum("failed"), 0),
        waiting=Coalesce(Sum("waiting", filter=~Q(status=ChunkStatus.DONE)), 0),
        skipped=Coalesce(Sum("skipped"), 0),
    )
    totals["processed"] = totals["sent"] + totals["failed"] + totals["skipped"]
    return totals


def finish_run_if_done(run_id: int, *, now: datetime.datetime) -> bool:
    """Close the run once it is planned and every chunk is done (the last chunk does it)."""
    if BulkRunChunk.objects.filter(run_id=run_id).exclude(status=ChunkStatus.DONE).exists():
        return False
    totals = chunk_totals(run_id)
    with transaction.atomic():
        finished = bool(
            BulkRun.objects.filter(pk=run_id, status=BulkRunStatus.RUNNING, planned_at__isnull=False).update(
                status=BulkRunStatus.DONE, finished_at=now, invited=totals["invited"], sent=totals["sent"],
                failed=totals["failed"], skipped_at_send=totals["skipped"],
            )
        )
        if finished:
            BulkRunTick.objects.filter(run_id=run_id).delete()
    if finished:  # the dashboard's stored figures are recounted with the run's invitations
        dashboard.request_refresh(BulkRun.objects.values_list("practice_id", flat=True).get(pk=run_id), now=now)
    return finished
