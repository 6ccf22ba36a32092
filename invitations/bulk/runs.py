"""Activate Now and the monthly re-invite: plan a bulk run as chunks, then send each chunk set-based.

Guarantees, and how they are kept:

* One run per practice at a time: a partial unique constraint on ``BulkRun(practice)`` where the
  status is running. A second click (or the monthly job) gets `RunAlreadyRunning`.
* Each chunk (one Celery task) is created, claimed and sent set-based by `invitations.bulk.chunks`,
  which says how no patient gets two invitations and no email or text goes out twice.
* Children too young for their own account get no invitation of their own (`child_no_own_account`):
  Activate Now invites each of their parents and guardians on file who has not linked their login
  (`guardians_of`), and the monthly run re-invites those whose last link ran out, in chunks of their
  own with every guarantee of the patients' (`invitations.bulk.guardians`). A run counts
  invitations: each patient's own, each parent's or guardian's, and a child with nobody to invite
  is skipped with a reason of its own (`eligibility.tally_bulk`).
* Channels: a run invites by the practice's choice (`Practice.bulk_channels`: email; email, else a
  text; or both), recorded on the run when it starts (`BulkRun.channels`, email only while the
  practice's texts are off) so every chunk sends as the preview said (`eligibility.bulk_plan`).
* Nothing lost: chunks left pending or claimed past their lease are enqueued again by the
  `resume_stalled` sweep (every few minutes), which also finishes runs whose chunks are all done.
"""

import datetime
import logging
import zoneinfo
from dataclasses import dataclass
from typing import Optional

from django.db import IntegrityError, transaction
from django.db.models import Count, DateTimeField, Exists, IntegerField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from core import languages
from core.queue import enqueue_on_commit
from patients import audit
from patients.audit import AuditAction
from patients.models import BulkChannels, Patient, Practice

from invitations import eligibility
from invitations.bulk import chunks
from invitations.models.bulk_runs import (
    CHUNK_LEASE,
    EXCLUSIVE_KINDS,
    BulkRun,
    BulkRunChunk,
    BulkRunKind,
    BulkRunStatus,
    BulkRunTick,
    ChunkStatus,
)
from invitations.models import Invitation, InvitationTemplate, Status, run_out

logger = logging.getLogger(__name__)

#: Patients per chunk (one Celery task each).
CHUNK_SIZE = 500
#: A chunk still waiting this long after it was enqueued is enqueued again (lost message).
REENQUEUE_PENDING_AFTER = datetime.timedelta(minutes=15)
#: A run confirmed this long ago and still not planned lost its planning task (or its worker).
REPLAN_AFTER = datetime.timedelta(minutes=5)

_LONG_AGO = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone.utc)


class RunAlreadyRunning(Exception):
    """Another bulk run of this practice has not finished yet."""


# -- who is targeted ----------------------------------------------------------------------


def inactive_patients(practice: Practice):
    return Patient.objects.filter(practice_id=practice.pk, portal_user__isnull=True)


def monthly_candidates(patients, *, practice: Practice, now: datetime.datetime):
    """Inactive patients whose last invitation expired or failed at least a link lifetime ago,
    with fewer than the practice's cap of unanswered invitations in a row.

    "Unanswered" counts invitations that expired (or ran out unmarked) or failed since the
    patient's last accepted one; revoked links were never the patient's to answer.
    """
    unanswered = Q(status__in=[Status.EXPIRED, Status.FAILED]) | run_out(now)
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
        created_at__lte=now - practice.link_lifetime,
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


def monthly_guardians(accesses, *, practice: Practice, now: datetime.datetime):
    """`monthly_candidates` for parents' and guardians' accesses: the last link of the access ran out
    or failed at least a link lifetime ago, fewer than the practice's cap of them unanswered (an
    access still waiting to be linked never answered one)."""
    unanswered = Q(status__in=[Status.EXPIRED, Status.FAILED]) | run_out(now)
    latest = Invitation.objects.filter(access_id=OuterRef("pk")).order_by("-created_at", "-pk")
    unanswered_in_a_row = (
        Invitation.objects.filter(access_id=OuterRef("pk")).filter(unanswered)
        .order_by().values("access_id").annotate(n=Count("pk")).values("n")
    )
    return (
        accesses.annotate(latest_created_at=Subquery(latest.values("created_at")[:1]), latest_id=Subquery(latest.values("pk")[:1]))
        .filter(latest_created_at__lte=now - practice.link_lifetime)
        .filter(Exists(Invitation.objects.filter(pk=OuterRef("latest_id")).filter(unanswered)))
        .annotate(unanswered_in_a_row=Coalesce(Subquery(unanswered_in_a_row, output_field=IntegerField()), Value(0)))
        .filter(unanswered_in_a_row__lt=practice.monthly_reinvite_cap)
    )


def guardians_of(practice: Practice, *, kind: str, now: datetime.datetime):
    """(accesses, children) a run of `kind` looks at for the practice's children too young for their
    own account: Activate Now every parent's and guardian's access waiting to be linked (and the
    children, to count those with nobody to invite); the monthly run those whose last link ran out
    (no children counted: it re-invites, it does not look for whom to invite); a resend run none."""
    if kind == BulkRunKind.RESEND:
        return None, None
    children = inactive_patients(practice).filter(eligibility.too_young(now))
    accesses = eligibility.guardians_to_invite(children).filter(practice_id=practice.pk)
    if kind == BulkRunKind.MONTHLY:
        return monthly_guardians(accesses, practice=practice, now=now), None
    return accesses, children


def preview(practice: Practice, *, now: datetime.datetime, kind: str = BulkRunKind.ACTIVATE_NOW) -> eligibility.Preview:
    """What a run would do now: how many are invited (by email, by text), how many through a parent
    or guardian, how many skipped and why (three queries), under the practice's channels."""
    accesses, children = guardians_of(practice, kind=kind, now=now)
    return eligibility.tally_bulk(
        candidates(practice, kind=kind, now=now), accesses=accesses, children=children, now=now,
        plan=eligibility.bulk_plan(practice),
    ).preview()


@dataclass(frozen=True)
class LanguageFallback:
    """Patients of a language the practice has not written its wording in yet: they get the
    version in the practice's language (`InvitationTemplate.choose`)."""

    language: str
    patients: int
    gets: str

    @property
    def message(self) -> str:
        name, gets = languages.english_name(self.language), languages.english_name(self.gets)
        who = f"{self.patients:,} patient{'s' if self.patients != 1 else ''} prefer{'s' if self.patients == 1 else ''}"
        return f"{who} {name}; the {name} email is not written yet, they will get {gets}."


def language_fallbacks(practice: Practice, *, now: datetime.datetime, kind: str = BulkRunKind.ACTIVATE_NOW) -> list[LanguageFallback]:
    """For each language whose version of the wording the practice has not written (while it wrote
    its own in its language), how many of the patients a run would invite now prefer it. No query
    when nothing falls back (no wording of the practice's own, or every language written)."""
    written = InvitationTemplate.written(practice)
    falling = {code: InvitationTemplate.choose(practice, code, written=written).language for code in languages.codes()}
    falling = {code: gets for code, gets in falling.items() if gets != code}
    if not falling:
        return []
    counts = (
        eligibility.eligible(candidates(practice, kind=kind, now=now), now=now, plan=eligibility.bulk_plan(practice))
        .filter(preferred_language__in=list(falling)).order_by().values_list("preferred_language").annotate(n=Count("pk"))
    )
    return [LanguageFallback(code, n, falling[code]) for code, n in sorted(counts) if n]


def channels_of(practice: Practice) -> str:
    """The channels a run of `practice` starting now uses (`BulkRun.channels`)."""
    return practice.bulk_channels if practice.text_invitations_enabled else BulkChannels.EMAIL


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
                channels=channels_of(practice),
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
    resend, plan = run.kind == BulkRunKind.RESEND, chunks.run_plan(run)
    chosen = candidates(practice, kind=run.kind, now=now, selected=run.selected_patient_ids)
    accesses, children = guardians_of(practice, kind=run.kind, now=now)
    # The skip counts for the summary, then the targeted ids (the eligible count): the patients', and
    # the accesses of young children's parents and guardians.
    counted = eligibility.tally_bulk(
        chosen, accesses=accesses, children=children, now=now, with_eligible=False, for_resend=resend, plan=plan,
    )
    patient_ids = list(
        eligibility.eligible(chosen, now=now, for_resend=resend, plan=plan).order_by("pk").values_list("pk", flat=True)
    )
    access_ids = [] if accesses is None else list(
        eligibility.eligible_representatives(accesses, now=now, plan=plan).order_by("pk").values_list("pk", flat=True)
    )
    targeted = len(patient_ids) + len(access_ids)
    with transaction.atomic():
        claimed = BulkRun.objects.filter(pk=run.pk, planned_at__isnull=True, status=BulkRunStatus.RUNNING).update(
            planned_at=now,
            # Patients added between the queries count as considered.
            considered=max(counted.considered, targeted),
            targeted=targeted,
            skip_counts={code: n for code, n in counted.skip_counts.items() if n},
        )
        if not claimed:
            return False
        planned = [("patient_ids", patient_ids[start:start + chunk_size]) for start in range(0, len(patient_ids), chunk_size)]
        planned += [("access_ids", access_ids[start:start + chunk_size]) for start in range(0, len(access_ids), chunk_size)]
        made = BulkRunChunk.objects.bulk_create(
            [
                BulkRunChunk(run=run, number=number, size=len(ids), enqueued_at=now, **{kind_of_ids: ids})
                for number, (kind_of_ids, ids) in enumerate(planned, start=1)
            ],
            batch_size=200,
        )
        if not made:
            chunks.finish_run_if_done(run.pk, now=now)
        chunks.enqueue([chunk.pk for chunk in made])
    return True


def _enqueue_planning(run_ids: list[int]) -> None:
    for run_id in run_ids:
        enqueue_on_commit("invitations.plan_bulk_run", run_id)


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
    #: The email or text service's recent refusal, while it is current.
    problem: str


def run_progress(run: BulkRun, *, now: datetime.datetime) -> Progress:
    """Where a run stands (three small queries): chunk sums, the current rate, the ETA."""
    totals = chunks.chunk_totals(run.pk)
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
        chunks.enqueue(ids)
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
        chunks.finish_run_if_done(run_id, now=now)
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
