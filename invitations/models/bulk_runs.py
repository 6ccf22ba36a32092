"""Bulk runs: one "Activate Now" or one monthly re-invite of a practice, planned as chunks.

A run is planned when staff confirm it (or when the monthly job starts it): the targeted
patients' ids are split into chunk rows. Each chunk is processed by one Celery task that first
claims the chunk row with a conditional ``UPDATE``; a second delivery of the same task finds the
chunk taken or done and does nothing. A chunk whose worker died keeps its claim until the lease
runs out; the sweep (`invitations.bulk.runs.resume_stalled`) then enqueues it again.
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q

from patients.models import BulkChannels, Practice

#: A claimed chunk whose worker has not finished after this long is considered abandoned.
#: Longer than the task time limit, so a chunk is never taken from a worker still running it;
#: equal to the send-claim lease, so its invitations' send claims have lapsed as well.
CHUNK_LEASE = datetime.timedelta(seconds=settings.PORTAL_BULK_CHUNK_LEASE_SECONDS)


class BulkRunKind(models.TextChoices):
    ACTIVATE_NOW = "activate_now", "Activate Now"
    MONTHLY = "monthly", "Monthly re-invite"
    RESEND = "resend", "New links for selected patients"


#: Kinds of which a practice runs one at a time. Resends of a few selected patients may run beside
#: them (and each other): each patient is still locked and checked again when their chunk runs.
EXCLUSIVE_KINDS = (BulkRunKind.ACTIVATE_NOW, BulkRunKind.MONTHLY)


class BulkRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Finished"


class BulkRun(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="bulk_runs")
    kind = models.CharField(max_length=20, choices=BulkRunKind.choices, default=BulkRunKind.ACTIVATE_NOW)
    status = models.CharField(max_length=10, choices=BulkRunStatus.choices, default=BulkRunStatus.RUNNING)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty for runs the schedule started.",
    )
    created_at = models.DateTimeField()
    #: When the targeted patients were split into chunks (by a worker, right after confirming).
    planned_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: Invitations looked at when the run was planned: each inactive patient's own, each of a young
    #: child's parents' and guardians' (`eligibility.tally_bulk`).
    considered = models.PositiveIntegerField(default=0)
    #: Invitations planned into chunks (eligible when the run was planned).
    targeted = models.PositiveIntegerField(default=0)
    #: Rule code -> invitations that rule blocked when planned (a patient may count under two rules).
    skip_counts = models.JSONField(default=dict, blank=True)
    #: The patients staff chose, for a resend run (the other kinds choose by rule).
    selected_patient_ids = models.JSONField(default=list, blank=True)
    #: How the run reaches patients: the practice's choice when the run started (email only while
    #: its texts are off), kept for the whole run so every chunk sends as the preview said.
    channels = models.CharField(
        max_length=20, choices=BulkChannels.choices, default=BulkChannels.EMAIL, db_default=BulkChannels.EMAIL,
    )
    # Totals, written when the run finishes (the progress page sums the chunks while it runs).
    # An invitation is sent once any of its channels went out and failed only when every one
    # failed; the per-channel figures count messages (an invitation by both channels counts in each).
    invited = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    emails_sent = models.PositiveIntegerField(default=0, db_default=0)
    emails_failed = models.PositiveIntegerField(default=0, db_default=0)
    texts_sent = models.PositiveIntegerField(default=0, db_default=0)
    texts_failed = models.PositiveIntegerField(default=0, db_default=0)
    skipped_at_send = models.PositiveIntegerField(
        default=0, help_text="Targeted patients who could no longer be invited when their chunk ran."
    )
    #: The email or text service's last refusal while the run sends (throttling, an outage, our account),
    #: shown on the progress page while it is recent. Never health information: an error's type
    #: and first line.
    send_problem = models.CharField(max_length=300, blank=True)
    send_problem_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "bulk invitation run"
        constraints = [
            # Two Activate Now clicks (or a click and the monthly job) cannot both start a run.
            models.UniqueConstraint(
                fields=["practice"], condition=Q(status="running", kind__in=["activate_now", "monthly"]),
                name="bulkrun_one_running_per_practice",
                violation_error_message="A bulk invitation run is already in progress for this practice.",
            ),
        ]
        indexes = [models.Index(fields=["practice", "kind", "-created_at"], name="bulkrun_practice_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.practice} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def skipped_at_plan(self) -> int:
        return max(self.considered - self.targeted, 0)

    @property
    def is_running(self) -> bool:
        return self.status == BulkRunStatus.RUNNING

    @property
    def is_planned(self) -> bool:
        return self.planned_at is not None


class ChunkStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    CLAIMED = "claimed", "Being processed"
    DONE = "done", "Done"


class BulkRunChunk(models.Model):
    run = models.ForeignKey(BulkRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    #: The patients of this chunk, planned when the run was confirmed...
    patient_ids = models.JSONField(default=list)
    #: ...or the accesses of young children's parents and guardians it invites (`invitations.bulk.guardians`).
    access_ids = models.JSONField(default=list, blank=True)
    #: Invitations planned: one per patient or per access.
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Recounted from the chunk's invitations at every mark of sent messages (as `BulkRun`'s).
    invited = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    emails_sent = models.PositiveIntegerField(default=0, db_default=0)
    emails_failed = models.PositiveIntegerField(default=0, db_default=0)
    texts_sent = models.PositiveIntegerField(default=0, db_default=0)
    texts_failed = models.PositiveIntegerField(default=0, db_default=0)
    #: Messages of the chunk that met an error of the email or text service and wait to be tried again.
    waiting = models.PositiveIntegerField(default=0)
    #: Since when the chunk has been handed back without sending anything (an outage, our
    #: account refused): after `bulk.GIVE_UP_AFTER` its invitations are failed with the reason.
    waiting_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="bulkrunchunk_unique_number")]
        indexes = [
            models.Index(
                fields=["status", "claimed_at"], condition=~Q(status="done"), name="bulkrunchunk_open_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.number} of run {self.run_id} ({self.get_status_display()})"


class BulkRunTick(models.Model):
    """What one mark of a chunk settled, and when: the progress page's current rate (the last
    seconds' ticks) and estimated time left. Deleted when the run finishes."""

    run = models.ForeignKey(BulkRun, on_delete=models.CASCADE, related_name="ticks", db_index=False)
    at = models.DateTimeField()
    settled = models.PositiveIntegerField(help_text="Invitations sent or failed in this mark.")

    class Meta:
        indexes = [models.Index(fields=["run", "at"], name="bulkruntick_run_at_idx")]

    def __str__(self) -> str:
        return f"{self.settled} at {self.at:%H:%M:%S}"
