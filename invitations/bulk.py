"""Activate Now and the monthly re-invite: plan a bulk run as chunks, then send each chunk set-based.

Guarantees, and how they are kept:

* One run per practice at a time: a partial unique constraint on ``BulkRun(practice)`` where the
  status is running. A second click (or the monthly job) gets `RunAlreadyRunning`.
* A chunk is processed by one worker at a time: its row is claimed with a conditional ``UPDATE``
  (pending, or claimed longer ago than `CHUNK_LEASE`). A duplicate delivery of the task finds the
  chunk taken or done and does nothing.
* One invitation per patient: the chunk locks its patients' rows (as a single invite does), then
  re-checks eligibility in SQL, which excludes every patient with an open invitation, including
  the ones an earlier, interrupted attempt of the same chunk created. The partial unique
  constraints on invitations are the last line of defence.
* No email twice: every invitation is claimed in the database (token hash + ``sending_started_at``)
  before its email goes out, and marked sent right after, in batches (`MARK_SENT_EVERY_SECONDS` /
  `MARK_SENT_EVERY_MESSAGES`). A worker that dies between the email service accepting a message and
  that batch being marked leaves those claims to lapse, and the resumed chunk sends them again with
  a fresh link: the same at-least-once trade-off as a single send (`Invitation.claim_for_sending`),
  limited to at most a couple of seconds' worth of emails.
* Sending is `core.sending.outbox`: concurrent calls (or the provider's batch calls) within the
  account's rate shared by every worker; throttled and temporarily failed emails are retried inside
  the chunk. A chunk stops starting emails `SEND_SECONDS` after its task began (inside the task's
  time limit), releases the claims of what it did not send and hands the rest on at once; an email
  service that keeps failing defers the chunk with a backoff. So a run is done only when every
  targeted patient was sent an invitation, failed with a reason, or skipped.
* Nothing lost: chunks left pending or claimed past their lease are enqueued again by the
  `resume_stalled` sweep (every few minutes), which also finishes runs whose chunks are all done.

Queries per chunk do not grow with the chunk's size: each step is one statement over the chunk.
"""

import datetime
import logging
import time
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Optional

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, DateTimeField, Exists, F, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.queue import enqueue_on_commit
from core.sending import outbox
from patients import audit
from patients.audit import AuditAction
from patients.models import Patient, Practice, normalise_email

from . import dashboard, eligibility, emails, sql
from .bulk_models import (
    CHUNK_LEASE,
    EXCLUSIVE_KINDS,
    BulkRun,
    BulkRunChunk,
    BulkRunKind,
    BulkRunStatus,
    BulkRunTick,
    ChunkStatus,
)
from .emails import Recipient
from .models import (
    OPEN_STATUSES,
    SEND_CLAIM_LEASE,
    SEND_GIVE_UP_AFTER,
    EventKind,
    Invitation,
    InvitationEvent,
    InvitationTemplate,
    RevokeReason,
    Source,
    Status,
    hash_token,
    new_token,
)

logger = logging.getLogger(__name__)

#: Patients per chunk (one Celery task each).
CHUNK_SIZE = 500
#: Sent invitations are marked in the database at least this often while a chunk sends, so a
#: worker that dies mid-chunk can repeat at most this long a stretch of emails.
MARK_SENT_EVERY_SECONDS = 2.0
#: ...or every this many emails, whichever comes first: it bounds what a killed worker can repeat.
MARK_SENT_EVERY_MESSAGES = settings.PORTAL_BULK_MARK_SENT_EVERY
#: A chunk still waiting this long after it was enqueued is enqueued again (lost message).
REENQUEUE_PENDING_AFTER = datetime.timedelta(minutes=15)
#: A run confirmed this long ago and still not planned lost its planning task (or its worker).
REPLAN_AFTER = datetime.timedelta(minutes=5)

SOURCE_OF_KIND = {BulkRunKind.ACTIVATE_NOW: Source.BULK, BulkRunKind.MONTHLY: Source.MONTHLY, BulkRunKind.RESEND: Source.BULK_RESEND}
#: A chunk handed back because the account's next sending slot is this far away waits at most
#: this long before asking again (the resume sweep covers longer waits).
MAX_SLOT_WAIT = 300
_LONG_AGO = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone.utc)


class RunAlreadyRunning(Exception):
    """Another bulk run of this practice has not finished yet."""


class ChunkDeferred(Exception):
    """The email service could not be reached; the chunk is put back to be tried again."""


# -- who is targeted ----------------------------------------------------------------------


def inactive_patients(practice: Practice):
    return Patient.objects.filter(practice_id=practice.pk, portal_user__isnull=True)


def monthly_candidates(patients, *, practice: Practice, now: datetime.datetime):
    """Inactive patients whose last invitation expired or failed at least a link lifetime ago,
    with fewer than the practice's cap of unanswered invitations in a row.

    "Unanswered" counts invitations that expired (or ran out unmarked) or failed since the
    patient's last accepted one; revoked links were never the patient's to answer.
    """
    unanswered = Q(status__in=[Status.EXPIRED, Status.FAILED]) | Q(status__in=OPEN_STATUSES, expires_at__lte=now)
    last_accepted = (
        Invitation.objects.filter(patient_id=OuterRef(OuterRef("pk")), status=Status.ACCEPTED)
        .order_by("-created_at").values("created_at")[:1]
    )
    unanswered_in_a_row = (
        Invitation.objects.filter(patient_id=OuterRef("pk"))
        .filter(unanswered)
        .filter(created_at__gt=Coalesce(Subquery(last_accepted), Value(_LONG_AGO, output_field=DateTimeField())))
        .order_by().values("patient_id").annotate(n=Count("pk")).values("n")
    )
    latest_ran_out = Invitation.objects.filter(
        patient_id=OuterRef("pk"), is_latest=True,
        created_at__lte=now - datetime.timedelta(days=practice.link_lifetime_days),
    ).filter(unanswered)
    return (
        patients.filter(Exists(latest_ran_out))
        .annotate(unanswered_in_a_row=Coalesce(Subquery(unanswered_in_a_row, output_field=IntegerField()), Value(0)))
        .filter(unanswered_in_a_row__lt=practice.monthly_reinvite_cap)
    )


def candidates(practice: Practice, *, kind: str, now: datetime.datetime, selected: Optional[list[int]] = None):
    """The patients a run of `kind` looks at (before eligibility): a resend looks at the patients
    staff selected, the others by rule."""
    patients = inactive_patients(practice)
    if kind == BulkRunKind.MONTHLY:
        patients = monthly_candidates(patients, practice=practice, now=now)
    elif kind == BulkRunKind.RESEND:
        patients = patients.filter(pk__in=selected or [])
    return patients


def preview(practice: Practice, *, now: datetime.datetime, kind: str = BulkRunKind.ACTIVATE_NOW) -> eligibility.Preview:
    """What a run would do now: how many are invited, how many skipped and why (one query)."""
    return eligibility.preview_of(candidates(practice, kind=kind, now=now), now=now)


# -- starting a run -----------------------------------------------------------------------


def running_run(practice: Practice) -> Optional[BulkRun]:
    """The practice's running Activate Now or monthly run (resends run beside them)."""
    return BulkRun.objects.filter(practice_id=practice.pk, status=BulkRunStatus.RUNNING, kind__in=EXCLUSIVE_KINDS).first()


def start_run(
    *,
    practice: Practice,
    now: datetime.datetime,
    kind: str = BulkRunKind.ACTIVATE_NOW,
    actor=None,
    plan_later: bool = False,
    chunk_size: int = CHUNK_SIZE,
    patient_ids: Optional[list[int]] = None,
) -> BulkRun:
    """Record a run. With `plan_later` (a confirm request, which must return at once) a worker
    plans it; otherwise it is planned here. Chunks are enqueued after commit. A resend run sends
    new links to `patient_ids` (the practice's own; others are ignored).

    Raises RunAlreadyRunning when the practice has an Activate Now or monthly run in progress.
    """
    if kind in EXCLUSIVE_KINDS and running_run(practice) is not None:
        raise RunAlreadyRunning()
    try:
        with transaction.atomic():
            run = BulkRun.objects.create(
                practice=practice, kind=kind, started_by=actor if getattr(actor, "pk", None) else None, created_at=now,
                selected_patient_ids=sorted(set(patient_ids or [])) if kind == BulkRunKind.RESEND else [],
            )
            _audit_start(run, actor=actor)
    except IntegrityError as exc:
        raise RunAlreadyRunning() from exc
    if plan_later:
        _enqueue_planning([run.pk])
    else:
        plan_run(run.pk, now=now, chunk_size=chunk_size)
        run.refresh_from_db()
    return run


def _audit_start(run: BulkRun, *, actor) -> None:
    """Staff's runs are in the audit trail, whoever starts them (the admin, the shell); the monthly
    schedule's are on the bulk runs list."""
    if run.kind == BulkRunKind.ACTIVATE_NOW:
        audit.record(
            practice_id=run.practice_id, actor=actor, action=AuditAction.ACTIVATE_NOW,
            summary=f"Activate Now started (run {run.pk})", details={"run": run.pk}, now=run.created_at,
        )
    elif run.kind == BulkRunKind.RESEND:
        audit.record_many(
            actor=actor, action=AuditAction.RESEND, details={"run": run.pk},
            rows=[(run.practice_id, pk, f"New portal link requested (sent in the background, run {run.pk})")
                  for pk in Patient.objects.filter(pk__in=run.selected_patient_ids, practice_id=run.practice_id).values_list("pk", flat=True)],
        )


def plan_run(run_id: int, *, now: datetime.datetime, chunk_size: int = CHUNK_SIZE) -> bool:
    """Count the skips, split the targeted patients into chunks and enqueue them (after commit).

    Safe to repeat: the run is marked planned by a conditional UPDATE in the same transaction as
    its chunks, so a second planner (a redelivered task) changes nothing, and a planner that dies
    leaves the run unplanned for the sweep to plan again.
    """
    run = BulkRun.objects.select_related("practice").filter(pk=run_id, planned_at__isnull=True).first()
    if run is None:
        return False
    practice = run.practice
    resend = run.kind == BulkRunKind.RESEND
    chosen = candidates(practice, kind=run.kind, now=now, selected=run.selected_patient_ids)
    # Two scans: the skip counts for the summary, then the targeted ids (the eligible count).
    counted = eligibility.tally(chosen, now=now, with_eligible=False, for_resend=resend)
    patient_ids = list(eligibility.eligible(chosen, now=now, for_resend=resend).order_by("pk").values_list("pk", flat=True))
    with transaction.atomic():
        claimed = BulkRun.objects.filter(pk=run.pk, planned_at__isnull=True, status=BulkRunStatus.RUNNING).update(
            planned_at=now,
            # Patients added between the two queries count as considered.
            considered=max(counted.considered, len(patient_ids)),
            targeted=len(patient_ids),
            skip_counts={code: n for code, n in counted.skip_counts.items() if n},
        )
        if not claimed:
            return False
        chunks = BulkRunChunk.objects.bulk_create(
            [
                BulkRunChunk(
                    run=run, number=number, patient_ids=patient_ids[start:start + chunk_size],
                    size=len(patient_ids[start:start + chunk_size]), enqueued_at=now,
                )
                for number, start in enumerate(range(0, len(patient_ids), chunk_size), start=1)
            ],
            batch_size=200,
        )
        if not chunks:
            finish_run_if_done(run.pk, now=now)
        _enqueue([chunk.pk for chunk in chunks])
    return True


def _enqueue_planning(run_ids: list[int]) -> None:
    for run_id in run_ids:
        enqueue_on_commit("invitations.plan_bulk_run", run_id)


def _enqueue(chunk_ids: list[int], *, countdown: float = 0) -> None:
    """Enqueue after commit; a broker outage is logged and the resume sweep enqueues them later."""
    for chunk_id in chunk_ids:
        enqueue_on_commit("invitations.process_bulk_chunk", chunk_id, countdown=countdown)


# -- processing one chunk -----------------------------------------------------------------


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
        Invitation.objects.filter(patient_id__in=[pk for pk, *_ in rows], is_latest=True).update(is_latest=False)
        expires_at = now + datetime.timedelta(days=practice.link_lifetime_days)
        tokens = {pk: new_token() for pk, *_ in rows}
        public_ids = {pk: uuid.uuid4() for pk, *_ in rows}
        # Claimed for sending at once, by this worker: token hash and sending_started_at are set.
        made = sql.insert_rows(
            Invitation,
            ["public_id", "practice", "patient", "email", "token_hash", "status", "revoke_reason", "failure_reason",
             "source", "created_by", "created_at", "sending_started_at", "send_attempts", "expires_at",
             "provider_message_id", "failed_attempts", "is_latest"],
            [
                (public_ids[pk], practice.pk, pk, normalise_email(email), hash_token(tokens[pk]), Status.PENDING, "", "",
                 source, run.started_by_id, now, now, 0, expires_at, "", 0, True)
                for pk, _first_name, email, _unverified in rows
            ],
            returning=["id", "patient"],
        )
        invitation_of = dict((patient_id, invitation_id) for invitation_id, patient_id in made)
        detail = Source(source).label
        sql.insert_rows(
            InvitationEvent, ["invitation", "kind", "at", "actor", "detail"],
            [(invitation_id, EventKind.CREATED, now, run.started_by_id, detail) for invitation_id in invitation_of.values()],
        )
    return [
        Recipient(
            invitation_of[pk], normalise_email(email), emails.greeting_name(first_name, unverified=unverified),
            tokens[pk], public_ids[pk], expires_at,
        )
        for pk, first_name, email, unverified in rows
    ]


def _reclaim_lapsed(chunk: BulkRunChunk, *, source: str, now: datetime.datetime) -> list[Recipient]:
    """Pending invitations an earlier attempt of this chunk created but did not finish sending
    (its worker died, or it handed them on)."""
    claimable = Q(sending_started_at__isnull=True) | Q(sending_started_at__lte=now - SEND_CLAIM_LEASE)
    lapsed = list(
        _chunk_invitations(chunk, source=source).filter(claimable, status=Status.PENDING, expires_at__gt=now)
        .select_related("patient").only("public_id", "email", "expires_at", "patient__first_name", "patient__self_signup_unverified")
    )
    if not lapsed:
        return []
    tokens = {}
    for invitation in lapsed:
        tokens[invitation.pk] = new_token()
        invitation.token_hash = hash_token(tokens[invitation.pk])
        invitation.sending_started_at = now
    Invitation.objects.filter(claimable, status=Status.PENDING).bulk_update(lapsed, ["token_hash", "sending_started_at"])
    # Keep only the rows this worker really claimed (another may have raced for some).
    ours = set(Invitation.objects.filter(token_hash__in=[i.token_hash for i in lapsed]).values_list("pk", flat=True))
    return [
        Recipient(
            i.pk, i.email, emails.greeting_name(i.patient.first_name, unverified=i.patient.self_signup_unverified),
            tokens[i.pk], i.public_id, i.expires_at,
        )
        for i in lapsed if i.pk in ours
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
        _enqueue([chunk.pk], countdown=min(max(report.slot_wait, 1.0), MAX_SLOT_WAIT))
        return "waiting"
    _enqueue([chunk.pk])  # its time ran out, not its luck: the next attempt starts at once
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


#: The progress page's current rate is over this many seconds of ticks.
RATE_WINDOW = datetime.timedelta(seconds=20)
#: A send problem older than this is no longer shown as current.
PROBLEM_SHOWN_FOR = datetime.timedelta(minutes=5)


@dataclass
class Progress:
    totals: dict[str, int]
    #: Invitations settled per second over the last `RATE_WINDOW` (None before the first mark).
    rate: Optional[float]
    #: Seconds until every targeted patient is settled at that rate (None: unknown).
    seconds_left: Optional[float]
    #: The email service's recent refusal, while it is current.
    problem: str


def run_progress(run: BulkRun, *, now: datetime.datetime) -> Progress:
    """Where a run stands (three small queries): chunk sums, the current rate, the ETA."""
    totals = chunk_totals(run.pk)
    rate = seconds_left = None
    if run.is_running and run.is_planned:
        ticks = BulkRunTick.objects.filter(run_id=run.pk)
        first = ticks.order_by("at").values_list("at", flat=True).first()
        if first is not None:
            window_start = max(now - RATE_WINDOW, first)
            settled = ticks.filter(at__gte=window_start).aggregate(n=Coalesce(Sum("settled"), 0))["n"]
            span = max((now - window_start).total_seconds(), 1.0)
            rate = settled / span
            remaining = max(run.targeted - totals["processed"], 0)
            seconds_left = remaining / rate if rate > 0 else None
    problem = ""
    if run.is_running and run.send_problem and run.send_problem_at and now - run.send_problem_at <= PROBLEM_SHOWN_FOR:
        problem = run.send_problem
    return Progress(totals=totals, rate=rate, seconds_left=seconds_left, problem=problem)


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


# -- the safety net: resume stalled chunks -------------------------------------------------


def resume_stalled(*, now: datetime.datetime, limit: int = 2000) -> int:
    """Enqueue again the chunks of running runs that a dead worker left claimed, or whose task
    message was lost, and the planning of runs never planned; close runs whose chunks are all
    done. Returns how many tasks were enqueued."""
    stalled = BulkRunChunk.objects.filter(run__status=BulkRunStatus.RUNNING).filter(
        Q(status=ChunkStatus.CLAIMED, claimed_at__lte=now - CHUNK_LEASE)
        | Q(status=ChunkStatus.PENDING, enqueued_at__lte=now - REENQUEUE_PENDING_AFTER)
    )
    ids = list(stalled.order_by("pk").values_list("pk", flat=True)[:limit])
    if ids:
        BulkRunChunk.objects.filter(pk__in=ids).update(enqueued_at=now)
        _enqueue(ids)
        logger.warning("re-enqueued %d stalled bulk-run chunks", len(ids))
    unplanned = list(
        BulkRun.objects.filter(
            status=BulkRunStatus.RUNNING, planned_at__isnull=True, created_at__lte=now - REPLAN_AFTER
        ).values_list("pk", flat=True)
    )
    if unplanned:
        _enqueue_planning(unplanned)
        logger.warning("re-enqueued planning of %d bulk runs", len(unplanned))
    unfinished = BulkRunChunk.objects.filter(run_id=OuterRef("pk")).exclude(status=ChunkStatus.DONE)
    finished_candidates = BulkRun.objects.filter(status=BulkRunStatus.RUNNING, planned_at__isnull=False).exclude(
        Exists(unfinished)
    )
    for run_id in finished_candidates.values_list("pk", flat=True):
        finish_run_if_done(run_id, now=now)
    return len(ids) + len(unplanned)


# -- monthly re-invite ----------------------------------------------------------------------


def monthly_is_due(practice: Practice, *, now: datetime.datetime) -> bool:
    """On or after the practice's day of the month (in its time zone), once per local month."""
    if not practice.monthly_reinvite_enabled:
        return False
    local = now.astimezone(zoneinfo.ZoneInfo(practice.time_zone))
    if local.day < practice.monthly_reinvite_day:
        return False
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return not BulkRun.objects.filter(
        practice_id=practice.pk, kind=BulkRunKind.MONTHLY, created_at__gte=month_start
    ).exists()


def start_due_monthly_runs(*, now: datetime.datetime) -> int:
    """Start this month's re-invite for every practice that is due. Returns how many started."""
    started = 0
    for practice in Practice.objects.filter(monthly_reinvite_enabled=True, invitations_enabled=True):
        if not monthly_is_due(practice, now=now):
            continue
        try:
            start_run(practice=practice, now=now, kind=BulkRunKind.MONTHLY)
        except RunAlreadyRunning:
            logger.info("practice %s: monthly re-invite waits for the running bulk run", practice.pk)
            continue
        started += 1
    return started
