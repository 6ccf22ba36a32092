"""One chunk of a bulk run (up to `CHUNK_SIZE` patients, or accesses of young children's parents and
guardians: `invitations.bulk.guardians`; one Celery task): create, claim and send its invitations set-based, by email and by text as the run's channels say (`BulkRun.channels`),
record what the email and text services did, hand on what they did not take. The run around the
chunks (who is targeted, planning, progress, the resume sweep) is `invitations.bulk.runs`.

* A chunk is processed by one worker at a time: its row is claimed with a conditional ``UPDATE``
  (pending, or claimed longer ago than `CHUNK_LEASE`). A duplicate delivery of the task finds the
  chunk taken or done and does nothing.
* One invitation per patient: the chunk locks its patients' rows (as a single invite does), then
  re-checks eligibility in SQL under the run's plan (which channels each patient gets), which
  excludes every patient with an open invitation, including the ones an earlier, interrupted
  attempt of the same chunk created. The partial unique constraints on invitations are the last
  line of defence. A parent's or guardian's access is locked and checked the same way, by a
  representative's rules.
* No email or text twice: each channel of every invitation is claimed in the database when it is
  created (`Invitation.objects.create_claimed_many`: the email's token hash + ``sending_started_at``,
  the text's own token hash + ``text_claimed_at``), or again with a new link by a later attempt
  (`claim_many`, `claim_texts`), before anything goes out, and marked sent right after, in batches
  (`MARK_SENT_EVERY_SECONDS` / `MARK_SENT_EVERY_MESSAGES`). A worker that dies between a service
  accepting a message and that batch being marked leaves those claims to lapse, and the resumed
  chunk sends them again with a fresh link: the same at-least-once trade-off as a single send
  (`Invitation.claim_for_sending`, `delivery.deliver_text`), limited to the messages settled since
  the last mark (a couple of seconds' worth; for texts at a long code's 1 a second, two or three).
* Sending: the emails, then the texts, through the sending engine (`core.sending.engine.send_many`
  with the email and the text transport), each within its account's rate shared by every worker;
  throttled and temporarily failed messages are retried inside the chunk. A chunk stops starting messages
  `SEND_SECONDS` after its task began (inside the task's time limit), releases the claims of what
  it did not send and hands the rest on: at once when its time ran out, after the wait for the
  account's next slot when that is far (a text account sends about 1 a second), after a backoff
  when a service keeps failing. So a run is done only when every targeted patient was sent an
  invitation, failed with a reason, or skipped. A text that Twilio refuses (an invalid number, a
  landline, an opted-out recipient) fails with the reason, and the chart or the opt-out list learns
  it (`delivery.refuse`).
* Honest figures: a chunk's figures are recounted from its invitations (one query) when its
  invitations exist, at a mark every `RECOUNT_EVERY_SECONDS` while it sends, and at the last mark of
  each channel's send: an invitation is sent once any of its channels went out and failed only when
  every one failed; per channel, messages sent and failed. The progress page is at most those
  seconds behind what was marked, never ahead of it.

Queries per chunk do not grow with the chunk's size: each step is one statement over the chunk.
"""

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, F, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import languages
from core.queue import enqueue_on_commit
from core.sending import engine
from core.sending.errors import SendError
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from core.sending.transports import text as text_transport
from patients.models import Patient, Practice, normalise_email

from invitations import eligibility
from invitations import adoption
from invitations.bulk import guardians
from invitations.wording import representatives as representative_wording
from invitations.wording import invitation_email
from invitations.wording import invitation_text
from invitations.texts import delivery
from invitations.models.batch_sql import AnyOf
from invitations.models.bulk_runs import CHUNK_LEASE, BulkRun, BulkRunChunk, BulkRunKind, BulkRunStatus, BulkRunTick, ChunkStatus
from invitations.wording.invitation_email import Recipient
from invitations.models import (
    OPEN_STATUSES, SEND_GIVE_UP_AFTER, Invitation, InvitationTemplate, RevokeReason, Source, Status, TextStatus, email_unsent,
)

logger = logging.getLogger(__name__)

#: Sent invitations are marked in the database at least this often while a chunk sends, so a
#: worker that dies mid-chunk can repeat at most this long a stretch of messages.
MARK_SENT_EVERY_SECONDS = 2.0
#: ...or every this many messages, whichever comes first: it bounds what a killed worker can repeat.
MARK_SENT_EVERY_MESSAGES = settings.PORTAL_BULK_MARK_SENT_EVERY
#: The invitations' source for each kind of run.
SOURCE_OF_KIND = {BulkRunKind.ACTIVATE_NOW: Source.BULK, BulkRunKind.MONTHLY: Source.MONTHLY, BulkRunKind.RESEND: Source.BULK_RESEND}
#: A chunk handed back because the account's next sending slot is this far away waits at most
#: this long before asking again (the resume sweep covers longer waits).
MAX_SLOT_WAIT = 300
#: A text still to go: the text's side of the claim rule without the expiry and the lease (the
#: "stray" net looks for texts an attempt lost track of, whoever holds them).
TEXT_UNSENT = Q(by_text=True, text_status=TextStatus.PENDING, status__in=list(OPEN_STATUSES))
#: Texts that went to Twilio and may still reach the patient, and texts that failed.
TEXT_WENT = (TextStatus.QUEUED, TextStatus.SENT, TextStatus.DELIVERED)
TEXT_FAILED = (TextStatus.FAILED, TextStatus.UNDELIVERED)


class ChunkDeferred(Exception):
    """The email or text service could not be reached; the chunk is put back to be tried again."""


def enqueue(chunk_ids: list[int], *, countdown: float = 0) -> None:
    """Enqueue after commit; a broker outage is logged and the resume sweep enqueues them later."""
    for chunk_id in chunk_ids:
        enqueue_on_commit("invitations.process_bulk_chunk", chunk_id, countdown=countdown)


#: A chunk stops starting new messages this long after its task began, well inside the task's soft
#: time limit (a provider call in flight then has its whole timeout to finish), records what it
#: sent and hands the rest on at once (see `_hand_on`).
SEND_SECONDS = settings.PORTAL_BULK_SEND_SECONDS


def run_plan(run: BulkRun) -> str:
    """The eligibility plan of a run (`eligibility.Plan`): its channels as confirmed."""
    return eligibility.PLAN_OF_BULK.get(run.channels, eligibility.Plan.EMAIL)


@dataclass
class Outgoing:
    """What one attempt of a chunk has claimed and will send."""

    emails: list[Recipient] = field(default_factory=list)
    texts: list[Item] = field(default_factory=list)


@dataclass
class Sending:
    """What one attempt of a chunk did, per channel."""

    emails: engine.Report
    texts: engine.Report

    @property
    def left(self) -> bool:
        return bool(self.emails.left or self.texts.left)

    @property
    def progressed(self) -> bool:
        return bool(self.emails.sent or self.emails.failed or self.texts.sent or self.texts.failed)


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

    A chunk is done only when each of its patients was sent an invitation (by every channel it
    uses), failed with a reason or skipped. What the services did not take before the chunk's
    time ran out, or refused for now, is released and handed on: at once after the deadline
    ("continued"), after the account's next slot ("waiting"), after a backoff when a service failed
    (raises ChunkDeferred; the task retries later).
    """
    started = time.monotonic()
    if not claim_chunk(chunk_id, now=now):
        return "not-claimed"
    chunk = BulkRunChunk.objects.select_related("run__practice").get(pk=chunk_id)
    practice = chunk.run.practice
    template = InvitationTemplate.versions(practice)  # the wording in each patient's language
    outgoing = _create_invitations(chunk, template=template, now=now)
    emails, texts = guardians.create_invitations(
        chunk, plan=run_plan(chunk.run), source=SOURCE_OF_KIND[chunk.run.kind], already_invited=_chunk_invitations(chunk), now=now,
    )
    outgoing.emails += emails
    outgoing.texts += texts
    if chunk.attempts > 1:  # only an earlier attempt can have left claims to take over
        outgoing.emails += _reclaim_lapsed(chunk, now=now)
        outgoing.texts += _reclaim_texts(chunk, template=template, now=now)
    _recount(chunk, now=now)  # the progress page counts skipped patients as soon as invitations exist
    deadline = started + SEND_SECONDS
    emailed = _send(outgoing.emails, chunk=chunk, practice=practice, template=template, deadline=deadline)
    waiting_emails = sum(1 for item in emailed.left if item.error)
    sending = Sending(emailed, _send_texts(outgoing.texts, chunk=chunk, deadline=deadline, waiting_emails=waiting_emails))
    if not sending.left:
        _add_strays(chunk, sending)
    if sending.left:
        return _hand_on(chunk, sending, claimed_at=now, now=timezone.now())
    _finish_chunk(chunk, claimed_at=now, now=timezone.now())
    finish_run_if_done(chunk.run_id, now=timezone.now())
    return "done"


def _chunk_invitations(chunk: BulkRunChunk):
    """The invitations this run made for the chunk's patients, or to its parents and guardians (on any attempt)."""
    return Invitation.objects.filter(
        Q(AnyOf("patient_id", chunk.patient_ids), access__isnull=True) | Q(AnyOf("access_id", chunk.access_ids)),
        source=SOURCE_OF_KIND[chunk.run.kind], created_at__gte=chunk.run.created_at, practice_id=chunk.run.practice_id,
    )


# -- creating and claiming ----------------------------------------------------------------------


def _create_invitations(chunk: BulkRunChunk, *, template: Callable[[str], InvitationTemplate], now: datetime.datetime) -> Outgoing:
    run, practice = chunk.run, chunk.run.practice
    ids = chunk.patient_ids
    if not ids:  # a chunk of parents' and guardians' accesses
        return Outgoing()
    with transaction.atomic():
        # The same lock a single invite takes, so the two cannot both invite one patient.
        list(Patient.objects.select_for_update(of=("self",)).filter(AnyOf("pk", ids)).order_by("pk").values_list("pk", flat=True))
        # Links that ran out but the sweep has not marked yet still hold the "one open
        # invitation per patient" constraint.
        Invitation.objects.filter(AnyOf("patient_id", ids)).expire_due(now, batch_size=len(ids) + 1)
        resend = run.kind == BulkRunKind.RESEND
        patients = Patient.objects.filter(AnyOf("pk", ids), practice_id=practice.pk)
        if chunk.attempts > 1:
            # One invitation per patient per run: a patient this run already invited (sent, failed
            # or waiting) is never invited again by a later attempt, whatever the rules say now.
            patients = patients.exclude(pk__in=_chunk_invitations(chunk).values("patient_id"))
        rows = [
            (pk, first_name, normalise_email(email) if by_email else "", unverified, mobile if by_text else "", language)
            for pk, first_name, email, unverified, mobile, by_email, by_text, language in eligibility.eligible(
                patients, now=now, for_resend=resend, plan=run_plan(run),
            ).values_list(
                "pk", "first_name", "email", "self_signup_unverified", "mobile_phone", "gets_email", "gets_text", "preferred_language",
            )
        ]
        if not rows:
            return Outgoing()
        if resend:  # the old link stops working the moment the new one exists
            Invitation.objects.filter(AnyOf("patient_id", [row[0] for row in rows])).revoke_open(
                reason=RevokeReason.RESENT, now=now, actor_id=run.started_by_id,
            )
        made = Invitation.objects.create_claimed_many(
            [(pk, email, mobile) for pk, _first_name, email, _unverified, mobile, _language in rows],
            practice=practice, source=SOURCE_OF_KIND[run.kind], actor_id=run.started_by_id, now=now,
            languages={pk: language for pk, *_, language in rows},
        )
    expires_at = practice.link_expires_at(now)
    outgoing = Outgoing()
    for pk, first_name, email, unverified, mobile, language in rows:
        invitation_id, token, public_id, text_token = made[pk]
        if email:
            greeting = invitation_email.greeting_name(first_name, unverified=unverified)
            outgoing.emails.append(Recipient(invitation_id, email, greeting, token, public_id, expires_at, language))
        if mobile:
            invitation = Invitation(pk=invitation_id, public_id=public_id, text_to=mobile, language=language)
            outgoing.texts.append(_text_in_language(invitation, text_token, practice=practice, template=template))
    return outgoing


def _text_in_language(invitation: Invitation, token: str, *, practice: Practice, template: Callable[[str], InvitationTemplate]):
    """`_text` in the invitation's language (its version of the wording, else the practice's language's)."""
    wording = template(invitation.language)
    with languages.speaking(wording.language):
        return _text(invitation, token, practice=practice, template=wording)


def _text(invitation: Invitation, token: str, *, practice: Practice, template: InvitationTemplate) -> Item:
    """The text of one claimed invitation: the practice's wording with the text's own link."""
    body = invitation_text.compose(practice, template.text_body, token)
    return Item(key=invitation.pk, to=invitation.text_to, payload=text_transport.Text(body, delivery.status_callback_url(invitation)))


def _reclaim_lapsed(chunk: BulkRunChunk, *, now: datetime.datetime) -> list[Recipient]:
    """Emails an earlier attempt of this chunk created but did not finish sending (its worker
    died, or it handed them on)."""
    claimed = (
        _chunk_invitations(chunk)
        .select_related("patient", "access__representative")
        .only(
            "public_id", "email", "expires_at", "language", "patient__first_name", "patient__self_signup_unverified",
            "access__representative__first_name",
        )
        .claim_many(now)
    )
    return [
        guardians.recipient(i, token) if i.access_id else Recipient(
            i.pk, i.email, invitation_email.greeting_name(i.patient.first_name, unverified=i.patient.self_signup_unverified),
            token, i.public_id, i.expires_at, i.language,
        )
        for i, token in claimed
    ]


def _reclaim_texts(chunk: BulkRunChunk, *, template: InvitationTemplate, now: datetime.datetime) -> list[Item]:
    """Texts an earlier attempt of this chunk created but did not send, each with a new link (those
    that may no longer be sent, after a STOP or a withdrawn consent, are failed with the reason)."""
    _chunk_invitations(chunk).fail_blocked_texts(now)
    claimed = (
        _chunk_invitations(chunk).select_related("patient").only("public_id", "text_to", "language", "access", "patient__first_name")
        .claim_texts(now)
    )
    practice = chunk.run.practice
    return [
        guardians.text_item(invitation, token, practice=practice, patient_first_name=invitation.patient.first_name)
        if invitation.access_id else _text_in_language(invitation, token, practice=practice, template=template)
        for invitation, token in claimed
    ]


# -- sending and recording ----------------------------------------------------------------------


def _send(outgoing: list[Recipient], *, chunk: BulkRunChunk, practice: Practice, template, deadline: float) -> engine.Report:
    """Hand the chunk's emails to the email service (concurrent calls or the provider's batches
    within the account's shared rate), marking them as they go."""
    if not outgoing:
        return engine.Report()
    composer = representative_wording.ChunkComposer(practice=practice, choose=template)  # a patient's email, or a parent's
    composer.prepare(outgoing)
    items = [Item(key=r.pk, to=r.to, payload=r, group=composer.group(r)) for r in outgoing]
    return engine.send_many(
        items, via=email_transport.for_many(composer), deadline=deadline, flush=lambda settled: _record(chunk, settled),
        flush_every_seconds=MARK_SENT_EVERY_SECONDS, flush_every_messages=MARK_SENT_EVERY_MESSAGES,
    )


def _send_texts(outgoing: list[Item], *, chunk: BulkRunChunk, deadline: float, waiting_emails: int) -> engine.Report:
    """Hand the chunk's texts to Twilio (concurrent calls within the text account's shared rate) in
    the time the emails left, marking them as they go."""
    if not outgoing:
        return engine.Report()
    if time.monotonic() >= deadline:  # the emails took the chunk's time: every text waits for the next attempt
        return engine.Report(left=list(outgoing), deadline_reached=True)
    return engine.send_many(
        outgoing, via=text_transport.for_many(), deadline=deadline,
        flush=lambda settled: _record_texts(chunk, settled, waiting_emails=waiting_emails),
        flush_every_seconds=MARK_SENT_EVERY_SECONDS, flush_every_messages=MARK_SENT_EVERY_MESSAGES,
    )


def _record(chunk: BulkRunChunk, settled: engine.Settled) -> None:
    """What the email service took or refused since the last mark: the invitations' new status,
    the chunk's figures and one tick for the progress page's rate, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.mark_sent_many(settled.sent, now=now)
        Invitation.objects.fail_many([(key, error.detail) for key, error in settled.failed], now=now)
        if _recount_due(chunk, settled):
            _recount(chunk, now=now, waiting=settled.waiting, progressed=bool(settled.sent or settled.failed))


def _record_texts(chunk: BulkRunChunk, settled: engine.Settled, *, waiting_emails: int) -> None:
    """What Twilio took or refused since the last mark (a refusal teaches the chart or the opt-out
    list), the chunk's figures and a tick, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.mark_texts_queued(settled.sent, now=now)
        delivery.refuse(settled.failed, now=now)
        if _recount_due(chunk, settled):
            _recount(chunk, now=now, waiting=waiting_emails + settled.waiting, progressed=bool(settled.sent or settled.failed))


def _figures(chunk: BulkRunChunk) -> dict[str, int]:
    """The chunk's figures from its invitations (one query): an invitation is sent once any of its
    channels went out (and it has not failed since), failed only when every channel failed; per
    channel, the messages that went out and have not failed, and those that failed.

    Counted at every mark, so the statement is built once per chunk object and run again as it is."""
    statement = chunk.__dict__.get("_figures_statement")
    if statement is None:
        failed = Q(status=Status.FAILED)
        went = Q(sent_at__isnull=False) | Q(text_sent_at__isnull=False) | Q(text_status__in=TEXT_WENT + (TextStatus.UNDELIVERED,))
        counted = _chunk_invitations(chunk).order_by().values("practice_id").annotate(
            invited=Count("pk"),
            sent=Count("pk", filter=went & ~failed),
            failed=Count("pk", filter=failed),
            emails_sent=Count("pk", filter=Q(sent_at__isnull=False, email_failed_at__isnull=True)),
            emails_failed=Count("pk", filter=Q(email_failed_at__isnull=False)),
            texts_sent=Count("pk", filter=Q(text_status__in=TEXT_WENT)),
            texts_failed=Count("pk", filter=Q(text_status__in=TEXT_FAILED)),
        )
        try:
            statement = counted.query.sql_with_params()
        except EmptyResultSet:  # a chunk of nobody: nothing to count
            statement = ("", ())
        chunk.__dict__["_figures_statement"] = statement
    row = None
    if statement[0]:
        with connection.cursor() as cursor:
            cursor.execute(*statement)
            row = cursor.fetchone()
    return {name: (row[index + 1] if row else 0) for index, name in enumerate(FIGURES)}


#: While a chunk sends, its figures are recounted at most this often (and at the end of each channel's send).
RECOUNT_EVERY_SECONDS = MARK_SENT_EVERY_SECONDS


def _recount_due(chunk: BulkRunChunk, settled: engine.Settled) -> bool:
    """Whether a mark recounts the chunk's figures: the send's last one always (so the figures are
    whole when the chunk finishes or is handed on), the others when RECOUNT_EVERY_SECONDS have passed
    since the last count. A chunk of 500 that sends in a fraction of a second marks its invitations
    five times (the bound on what a dead worker repeats) and counts them once; the progress page is
    never more than those seconds behind, and never ahead."""
    counted_at = chunk.__dict__.get("_counted_at")
    return settled.final or counted_at is None or time.monotonic() - counted_at >= RECOUNT_EVERY_SECONDS


def _recount(chunk: BulkRunChunk, *, now: datetime.datetime, waiting: Optional[int] = None, progressed: bool = False) -> None:
    """Write the chunk's figures (and the messages `waiting` for another try); a tick of the
    invitations settled since the last count for the progress page's rate. Only the chunk's
    current owner calls it, so `chunk.sent` / `chunk.failed` hold the last count."""
    figures = _figures(chunk)
    extra = {} if waiting is None else {"waiting": waiting}
    if progressed:
        extra["waiting_since"] = None
    BulkRunChunk.objects.filter(pk=chunk.pk).update(skipped=max(chunk.size - figures["invited"], 0), **figures, **extra)
    settled = figures["sent"] + figures["failed"] - chunk.sent - chunk.failed
    if settled > 0:
        BulkRunTick.objects.create(run_id=chunk.run_id, at=now, settled=settled)
    chunk.sent, chunk.failed = figures["sent"], figures["failed"]
    chunk.__dict__["_counted_at"] = time.monotonic()


def _add_strays(chunk: BulkRunChunk, sending: Sending) -> None:
    """A safety net: the chunk is done only when none of its invitations still has an email or a
    text to send; any such is handed on like the rest (it should never happen)."""
    strays = (
        _chunk_invitations(chunk).filter(email_unsent() | TEXT_UNSENT)
        .annotate(email_left=_flag(email_unsent()), text_left=_flag(TEXT_UNSENT))
        .values_list("pk", "email_left", "text_left")
    )
    for pk, email_left, text_left in strays:
        if email_left:
            sending.emails.left.append(Item(key=pk, to=""))
        if text_left:
            sending.texts.left.append(Item(key=pk, to=""))


def _flag(condition: Q) -> Case:
    return Case(When(condition, then=Value(True)), default=Value(False), output_field=BooleanField())


def _hand_on(chunk: BulkRunChunk, sending: Sending, *, claimed_at: datetime.datetime, now: datetime.datetime) -> str:
    """Release what the chunk did not send and give the chunk back: at once when its time ran
    out, after the account's next slot when that is far, after a backoff (ChunkDeferred) when a
    service failed. A chunk that has sent nothing for `SEND_GIVE_UP_AFTER` fails what is left
    with the reason instead (the email, the text, or both: an invitation fails when none is left)."""
    emailed, texted = sending.emails, sending.texts
    emails_left, texts_left = _left_with_reasons(emailed), _left_with_reasons(texted)
    email_problem, text_problem = _problem(emailed), _problem(texted)
    problem = email_problem or text_problem
    with transaction.atomic():
        row = BulkRunChunk.objects.select_for_update().get(pk=chunk.pk)
        if (row.status, row.claimed_at) != (ChunkStatus.CLAIMED, claimed_at):
            # The lease ran out and another worker took the chunk: its claims are not ours.
            logger.warning("bulk chunk %s was taken over while it sent; leaving it to the new owner", chunk.pk)
            return "taken-over"
        since = None if sending.progressed or problem is None else (row.waiting_since or now)
        gave_up = since is not None and now - since >= SEND_GIVE_UP_AFTER
        if gave_up:
            hours = SEND_GIVE_UP_AFTER.seconds // 3600
            email_reason = f"Gave up after the email service refused for {hours} hours: {(email_problem or problem).detail}"
            text_reason = f"Gave up after the text service refused for {hours} hours: {(text_problem or problem).detail}"
            Invitation.objects.fail_many([(pk, email_reason) for pk, _ in emails_left], now=now)
            Invitation.objects.fail_texts([(pk, text_reason[:300]) for pk, _ in texts_left], now=now)
            logger.warning(
                "bulk chunk %s: gave up on %d emails and %d texts (%s)", chunk.pk, len(emails_left), len(texts_left), problem.detail,
            )
        else:
            Invitation.objects.release_many(emails_left, now=now)
            Invitation.objects.release_texts(texts_left, now=now)
            waiting = sum(1 for _, why in emails_left + texts_left if why)
            BulkRunChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CLAIMED, claimed_at=claimed_at).update(
                status=ChunkStatus.PENDING, enqueued_at=now, waiting=waiting, waiting_since=since,
            )
        if problem is not None:
            BulkRun.objects.filter(pk=chunk.run_id).update(send_problem=problem.detail[:300], send_problem_at=now)
    if gave_up:
        _finish_chunk(chunk, claimed_at=claimed_at, now=now)
        finish_run_if_done(chunk.run_id, now=now)
        return "gave-up"
    if _failing(emailed, email_problem) or _failing(texted, text_problem):
        raise ChunkDeferred(problem.detail)
    slot_wait = min((wait for wait in (emailed.slot_wait, texted.slot_wait) if wait), default=None)
    if not sending.progressed and slot_wait:
        # Nothing could start before the deadline: the account's next slot is that far away.
        enqueue([chunk.pk], countdown=min(max(slot_wait, 1.0), MAX_SLOT_WAIT))
        return "waiting"
    enqueue([chunk.pk])  # its time ran out, not its luck: the next attempt starts at once
    return "continued"


def _left_with_reasons(report: engine.Report) -> list[tuple[int, str]]:
    """(invitation id, the error its message last met or "") for what a channel handed back."""
    return [(item.key, item.error.detail if item.error else "") for item in report.left]


def _problem(report: engine.Report) -> Optional[SendError]:
    """Why a channel handed messages back, if a service said: its refusal of our account, or the
    first error a message met."""
    return report.service_error or next((item.error for item in report.left if item.error), None)


def _failing(report, problem) -> bool:
    """A channel left messages because its service failed (not because the chunk's time ran out)."""
    return bool(report.left) and (report.service_error is not None or (problem is not None and not report.deadline_reached))


def _finish_chunk(chunk: BulkRunChunk, *, claimed_at: datetime.datetime, now: datetime.datetime) -> None:
    figures = _figures(chunk)
    BulkRunChunk.objects.filter(pk=chunk.pk, status=ChunkStatus.CLAIMED, claimed_at=claimed_at).update(
        status=ChunkStatus.DONE, finished_at=now, skipped=max(chunk.size - figures["invited"], 0), waiting=0,
        waiting_since=None, **figures,
    )


#: The figures a run sums over its chunks (and stores when it finishes).
FIGURES = ("invited", "sent", "failed", "emails_sent", "emails_failed", "texts_sent", "texts_failed")


def chunk_totals(run_id: int) -> dict[str, int]:
    """Progress of a run: sums over its chunks (one query)."""
    totals = BulkRunChunk.objects.filter(run_id=run_id).aggregate(
        chunks=Count("pk"),
        chunks_done=Count("pk", filter=Q(status=ChunkStatus.DONE)),
        waiting=Coalesce(Sum("waiting", filter=~Q(status=ChunkStatus.DONE)), 0),
        skipped=Coalesce(Sum("skipped"), 0),
        **{name: Coalesce(Sum(name), 0) for name in FIGURES},
    )
    totals["processed"] = totals["sent"] + totals["failed"] + totals["skipped"]
    return totals


def finish_run_if_done(run_id: int, *, now: datetime.datetime) -> bool:
    """Close the run once it is planned and every chunk is done (the last chunk does it)."""
    totals = chunk_totals(run_id)
    if totals["chunks_done"] < totals["chunks"]:
        return False
    with transaction.atomic():
        finished = bool(
            BulkRun.objects.filter(pk=run_id, status=BulkRunStatus.RUNNING, planned_at__isnull=False).update(
                status=BulkRunStatus.DONE, finished_at=now, skipped_at_send=totals["skipped"],
                **{name: totals[name] for name in FIGURES},
            )
        )
        if finished:
            BulkRunTick.objects.filter(run_id=run_id).delete()
    if finished:  # the dashboard's stored figures are recounted with the run's invitations
        adoption.request_refresh(BulkRun.objects.values_list("practice_id", flat=True).get(pk=run_id), now=now)
    return finished
