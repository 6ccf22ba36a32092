"""Payment-plan applications, the lender events that move them, staff notification preferences
and the alert deliveries that are sent exactly once.

State machine (one place: `PaymentPlanApplication.can_move_to`): each status has a rank,

    started (0) < pre-qualified (1) < approved (2) = declined (2) < activated (3)

and an application only ever moves to a status of *higher* rank. So an event that arrives late
never moves it back; approved and declined are the lender's two decisions and neither
overrides the other (whichever arrives first stands); declined is final except that an
activation (the plan exists, so the lender's latest word wins) still moves it on. A late event
still records its step time if that step has none yet.

Alerts that wait (14 days after start, 48 hours after approval) are rows with a due time
(`incomplete_due_at`, `open_approval_due_at`) that a beat sweep picks up: never ETA tasks.
"""

import datetime
import secrets
from typing import Optional

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from patients.models import Patient, Practice

INCOMPLETE_AFTER = datetime.timedelta(days=14)
OPEN_APPROVAL_AFTER = datetime.timedelta(hours=48)
# The previous webhook secret still verifies this long after a rotation, so the lender can
# switch over without dropping events.
PREVIOUS_SECRET_GRACE = datetime.timedelta(hours=24)
# A claim older than this belongs to a worker that died while sending.
INTERRUPTED_AFTER = datetime.timedelta(minutes=15)
# A pending immediate alert older than this has lost its task (broker down at enqueue time).
LOST_TASK_AFTER = datetime.timedelta(minutes=10)


class ApplicationStatus(models.TextChoices):
    STARTED = "started", "Started"
    PRE_QUALIFIED = "pre_qualified", "Pre-qualified"
    DECLINED = "declined", "Declined"
    APPROVED = "approved", "Approved"
    ACTIVATED = "activated", "Activated"


STATUS_RANK = {
    ApplicationStatus.STARTED: 0,
    ApplicationStatus.PRE_QUALIFIED: 1,
    ApplicationStatus.APPROVED: 2,
    ApplicationStatus.DECLINED: 2,
    ApplicationStatus.ACTIVATED: 3,
}


class AlertType(models.TextChoices):
    INCOMPLETE = "incomplete", "Incomplete application"
    DECLINED = "declined", "Declined"
    OPEN_APPROVAL = "open_approval", "Open approval"
    ACTIVATED = "activated", "Payment plan activated"
    PRE_QUALIFIED = "pre_qualified", "Pre-qualified"


# Alerts sent as soon as an application moves into the status.
IMMEDIATE_ALERTS = {
    ApplicationStatus.DECLINED: AlertType.DECLINED,
    ApplicationStatus.ACTIVATED: AlertType.ACTIVATED,
    ApplicationStatus.PRE_QUALIFIED: AlertType.PRE_QUALIFIED,
}


class PaymentPlanApplicationQuerySet(models.QuerySet):
    def incomplete_due(self, now: datetime.datetime) -> "PaymentPlanApplicationQuerySet":
        return self.filter(status=ApplicationStatus.STARTED, incomplete_due_at__lte=now)

    def open_approval_due(self, now: datetime.datetime) -> "PaymentPlanApplicationQuerySet":
        return self.filter(status=ApplicationStatus.APPROVED, open_approval_due_at__lte=now)


class PaymentPlanApplication(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="payment_plan_applications")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="payment_plan_applications")
    lender_application_id = models.CharField("lender's application id", max_length=100)
    status = models.CharField(max_length=20, choices=ApplicationStatus.choices, default=ApplicationStatus.STARTED)

    started_at = models.DateTimeField(null=True, blank=True)
    pre_qualified_at = models.DateTimeField("pre-qualified at", null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    # Scheduled alerts: set while the alert is still to come, cleared once the sweep has
    # created it or the application moved on. The sweep reads only these columns.
    incomplete_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    incomplete_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    open_approval_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    open_approval_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaymentPlanApplicationQuerySet.as_manager()

    class Meta:
        verbose_name = "payment-plan application"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "lender_application_id"],
                name="application_unique_lender_id_per_practice",
                violation_error_message="This practice already has an application with this lender id.",
            )
        ]
        indexes = [
            models.Index(fields=["practice", "status", "id"], name="application_status_idx"),
            models.Index(
                fields=["incomplete_due_at"],
                name="application_incomplete_due_idx",
                condition=Q(incomplete_due_at__isnull=False),
            ),
            models.Index(
                fields=["open_approval_due_at"],
                name="application_approval_due_idx",
                condition=Q(open_approval_due_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        # Appears in admin history and messages: the lender's id only, no status or name.
        return f"Application {self.lender_application_id}"

    # -- state machine ---------------------------------------------------------------------

    def can_move_to(self, status: str) -> bool:
        return STATUS_RANK[ApplicationStatus(status)] > STATUS_RANK[ApplicationStatus(self.status)]

    def step_time(self, status: str) -> Optional[datetime.datetime]:
        return getattr(self, f"{status}_at")

    def record_step(self, status: str, occurred_at: datetime.datetime) -> bool:
        """Store when a step happened (first report wins); move forward if it is newer.

        Returns whether the status changed.
        """
        if self.step_time(status) is None:
            setattr(self, f"{status}_at", occurred_at)
        moved = self.can_move_to(status)
        if moved:
            self.status = status
        self.refresh_due_times()
        return moved

    def refresh_due_times(self) -> None:
        self.incomplete_due_at = (
            self.started_at + INCOMPLETE_AFTER
            if self.status == ApplicationStatus.STARTED and self.started_at and not self.incomplete_alerted_at
            else None
        )
        self.open_approval_due_at = (
            self.approved_at + OPEN_APPROVAL_AFTER
            if self.status == ApplicationStatus.APPROVED and self.approved_at and not self.open_approval_alerted_at
            else None
        )


class EventSource(models.TextChoices):
    LENDER = "lender", "Lender webhook"
    STAFF = "staff", "Recorded by staff"


class EventOutcome(models.TextChoices):
    APPLIED = "applied", "Moved the application"
    RECORDED = "recorded", "Step time recorded; status unchanged (older or equal step)"


class LenderEvent(models.Model):
    """Every event received (and every manual change): the idempotency key and the audit trail."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="lender_events")
    application = models.ForeignKey(PaymentPlanApplication, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=100)
    event_type = models.CharField(max_length=20, choices=ApplicationStatus.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=EventSource.choices, default=EventSource.LENDER)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=10, choices=EventOutcome.choices)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "event_id"], name="lender_event_unique_per_practice")
        ]

    def __str__(self) -> str:
        return f"Event {self.event_id}"


def generate_webhook_secret() -> str:
    return secrets.token_hex(32)


class PracticeLenderSettings(models.Model):
    """The practice's webhook secret for the lender (one per practice)."""

    practice = models.OneToOneField(Practice, on_delete=models.CASCADE, related_name="lender_settings")
    webhook_secret = models.CharField(max_length=128, default=generate_webhook_secret, editable=False)
    previous_webhook_secret = models.CharField(max_length=128, blank=True, editable=False)
    previous_secret_valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "lender webhook settings"
        verbose_name_plural = "lender webhook settings"

    def __str__(self) -> str:
        return f"Lender webhook settings for {self.practice}"

    def secrets_valid_at(self, now: datetime.datetime) -> list[str]:
        valid = [self.webhook_secret]
        if self.previous_webhook_secret and self.previous_secret_valid_until and now < self.previous_secret_valid_until:
            valid.append(self.previous_webhook_secret)
        return valid

    def rotate_secret(self, *, now: datetime.datetime) -> None:
        self.previous_webhook_secret = self.webhook_secret
        self.previous_secret_valid_until = now + PREVIOUS_SECRET_GRACE
        self.webhook_secret = generate_webhook_secret()
        self.rotated_at = now
        self.save(
            update_fields=["webhook_secret", "previous_webhook_secret", "previous_secret_valid_until", "rotated_at"]
        )


class DeliveryMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately, one email per alert"
    DIGEST = "digest", "A daily digest"


class NotificationPreference(models.Model):
    """(member, office, alert type) -> on/off. No row means on: new members get every alert."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="notification_preferences")
    alert_type = models.CharField(max_length=20, choices=AlertType.choices)
    enabled = models.BooleanField(default=True)

    class Meta:
        verbose_name = "my notification preference"
        verbose_name_plural = "my notification preferences"
        constraints = [
            models.UniqueConstraint(
                fields=["user", "practice", "alert_type"], name="notification_preference_unique"
            )
        ]

    def __str__(self) -> str:
        return f"Notification preference #{self.pk}"


class NotificationSettings(models.Model):
    """A member's delivery mode for one office. No row means immediate."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="notification_settings")
    delivery_mode = models.CharField(max_length=10, choices=DeliveryMode.choices, default=DeliveryMode.IMMEDIATE)

    class Meta:
        verbose_name_plural = "notification settings"
        constraints = [
            models.UniqueConstraint(fields=["user", "practice"], name="notification_settings_unique")
        ]

    def __str__(self) -> str:
        return f"Notification settings #{self.pk}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class NotificationDeliveryQuerySet(models.QuerySet):
    """Every status change of a delivery (the only writers of `status`):

        pending -> sending (claim) -> sent | cancelled | failed, or back to pending for the next try
        sending -> failed when the claim outlived INTERRUPTED_AFTER (the worker died)
        failed -> pending when staff retry it

    Each update is conditional on the current status, so of two callers only one moves a row.
    """

    def pending(self, mode: str) -> "NotificationDeliveryQuerySet":
        return self.filter(status=DeliveryStatus.PENDING, delivery_mode=mode)

    def claim(self, now: datetime.datetime) -> int:
        """pending -> sending. Only the caller whose update touched a row sends it; returns how
        many rows this caller claimed."""
        return self.filter(status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )

    def mark_sent(self, sent_at: datetime.datetime) -> int:
        return self._settle(DeliveryStatus.SENT, "", sent_at=sent_at)

    def cancel(self, reason: str) -> int:
        return self._settle(DeliveryStatus.CANCELLED, reason)

    def mark_failed(self, error: str) -> int:
        return self._settle(DeliveryStatus.FAILED, error)

    def release(self, error: str) -> int:
        """Back to pending for the task's next try; `claimed_at` stays, so the sweep re-enqueues
        the row if that retry is lost."""
        return self._settle(DeliveryStatus.PENDING, error)

    def _settle(self, status: str, error: str, sent_at: Optional[datetime.datetime] = None) -> int:
        return self.filter(status=DeliveryStatus.SENDING).update(status=status, last_error=error[:500], sent_at=sent_at)

    def fail_interrupted(self, now: datetime.datetime) -> int:
        """A claim that never finished: the email may or may not have left, so it is not resent
        by itself (at most once); staff see it as failed and may retry."""
        return self.filter(status=DeliveryStatus.SENDING, claimed_at__lt=now - INTERRUPTED_AFTER).update(
            status=DeliveryStatus.FAILED,
            last_error="Interrupted while sending (the worker stopped); it may not have arrived. Retry to send it again.",
        )

    def lost(self, now: datetime.datetime) -> "NotificationDeliveryQuerySet":
        """Pending immediate alerts whose task never ran: never claimed, or released for a retry
        that never came."""
        cutoff = now - LOST_TASK_AFTER
        return self.pending(DeliveryMode.IMMEDIATE).filter(
            Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True, created_at__lt=cutoff)
        )

    def retry_failed(self) -> int:
        """failed -> pending, as a fresh immediate alert (staff retry)."""
        return self.filter(status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, attempts=0, delivery_mode=DeliveryMode.IMMEDIATE, claimed_at=None
        )


class NotificationDelivery(models.Model):
    """One alert for one recipient. The unique constraint is what makes it 'at most once':
    the row is created before anything is sent and claimed (pending -> sending) by whoever
    sends it."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="notification_deliveries")
    application = models.ForeignKey(PaymentPlanApplication, on_delete=models.CASCADE, related_name="deliveries")
    alert_type = models.CharField(max_length=20, choices=AlertType.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_deliveries"
    )
    delivery_mode = models.CharField(max_length=10, choices=DeliveryMode.choices, default=DeliveryMode.IMMEDIATE)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "notification deliveries"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "alert_type", "recipient"], name="delivery_once_per_recipient"
            )
        ]
        indexes = [
            models.Index(fields=["practice", "status", "id"], name="delivery_status_idx"),
            models.Index(fields=["status", "delivery_mode", "created_at"], name="delivery_queue_idx"),
            models.Index(fields=["recipient", "practice", "status"], name="delivery_recipient_idx"),
        ]

    def __str__(self) -> str:
        return f"Delivery #{self.pk}"
