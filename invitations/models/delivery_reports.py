"""Delivery reports from the email service, each stored once.

anymail's tracking webhook hands us normalised events; we keep one row per (provider, event id)
and apply an event to its invitation only when its row is new, so a provider's retried or
duplicated webhook changes nothing twice. Providers that send no event id (some send none for
some event types) get a stable id derived from what identifies the event.
"""

import datetime
import hashlib
from typing import Optional

from django.db import IntegrityError, models, transaction
from django.utils import timezone


class DeliveryReport(models.Model):
    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=30)
    message_id = models.CharField(max_length=200, blank=True)
    invitation = models.ForeignKey(
        "invitations.Invitation", null=True, blank=True, on_delete=models.SET_NULL, related_name="delivery_reports"
    )
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=30, blank=True, help_text="What the report changed, if anything.")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="delivery_report_once_per_provider_event")
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type}"


def stable_event_id(*, event_id: Optional[str], event_type: str, message_id: Optional[str], timestamp) -> str:
    if event_id:
        return str(event_id)[:200]
    basis = f"{event_type}|{message_id or ''}|{timestamp.isoformat() if timestamp else ''}"
    return "derived:" + hashlib.sha256(basis.encode()).hexdigest()


def store_once(
    *, provider: str, event_id: str, event_type: str, message_id: Optional[str], occurred_at: Optional[datetime.datetime]
) -> Optional[DeliveryReport]:
    """The new row, or None when this event was already received."""
    try:
        with transaction.atomic():
            return DeliveryReport.objects.create(
                provider=provider[:40],
                event_id=event_id,
                event_type=event_type[:30],
                message_id=(message_id or "")[:200],
                occurred_at=occurred_at,
            )
    except IntegrityError:
        return None


def latest_received_at() -> Optional[datetime.datetime]:
    return DeliveryReport.objects.aggregate(latest=models.Max("received_at"))["latest"]


def status_line(now: datetime.datetime) -> tuple[str, str]:
    """The system status page's line about delivery reports (registered in InvitationsConfig.ready)."""
    latest = latest_received_at()
    if latest is None:
        return ("Delivery reports (tracking webhooks)",
                "none received yet: set up the email service's tracking webhook to /anymail/<provider>/tracking/ "
                "with ANYMAIL_WEBHOOK_SECRET")
    minutes = int((now - latest).total_seconds() // 60)
    local = timezone.localtime(latest)
    return ("Delivery reports (tracking webhooks)", f"last received {local:%d %b, %H:%M} ({minutes} minutes ago)")
