"""The daily digest: which members' digests are due (7:00 office time) and sending one.

A digest item is a `NotificationDelivery` in digest mode. Items are claimed like immediate alerts
(pending -> sending) when their digest is sent, so each item goes out in one digest only and a
digest run that comes twice or late finds nothing left to send.
"""

import datetime
import zoneinfo
from typing import Optional

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.sending import engine
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from patients.models import Practice

from . import emails
from .models import DeliveryMode, NotificationDelivery
from .services import TURNED_OFF, fail_or_retry, still_wanted


def digest_hour() -> int:
    return getattr(settings, "NOTIFICATIONS_DIGEST_HOUR", 7)


def digest_cutoff(practice: Practice, now: datetime.datetime) -> datetime.datetime:
    """The most recent digest time (7:00 in the office's time zone) at or before `now`.
    Items created before it belong in the digest; later ones wait for tomorrow's."""
    local = now.astimezone(zoneinfo.ZoneInfo(practice.time_zone))
    cutoff = local.replace(hour=digest_hour(), minute=0, second=0, microsecond=0)
    if cutoff > local:
        cutoff -= datetime.timedelta(days=1)
    return cutoff


def digests_due(*, now: datetime.datetime) -> list[tuple[int, int]]:
    """(recipient id, practice id) pairs whose digest is due. Safe to run as often as wanted:
    items are claimed when sent, so a pair is only due while it still has unsent items."""
    pending = NotificationDelivery.objects.pending(DeliveryMode.DIGEST)
    practice_ids = pending.order_by().values_list("practice_id", flat=True).distinct()
    due: list[tuple[int, int]] = []
    for practice in Practice.objects.filter(pk__in=practice_ids).only("pk", "time_zone"):
        recipients_due = (
            pending.filter(practice=practice, created_at__lt=digest_cutoff(practice, now))
            .order_by()
            .values_list("recipient_id", flat=True)
            .distinct()
        )
        due.extend((user_id, practice.pk) for user_id in recipients_due)
    return sorted(due)


def send_digest(*, user_id: int, practice_id: int, now: Optional[datetime.datetime] = None) -> str:
    """One email with every due digest item of one member for one office. Returns "sent",
    "skipped", "cancelled" or "failed"; raises services.RetryLater when the task should try again."""
    now = now or timezone.now()
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:  # deleted since the digest was enqueued
        return "skipped"
    with transaction.atomic():
        ids = list(
            NotificationDelivery.objects.pending(DeliveryMode.DIGEST)
            .filter(recipient_id=user_id, practice_id=practice_id, created_at__lt=digest_cutoff(practice, now))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        NotificationDelivery.objects.filter(pk__in=ids).claim(now)
    if not ids:
        return "skipped"
    items = list(
        NotificationDelivery.objects.filter(pk__in=ids)
        .select_related("application__patient", "recipient")
        .order_by("created_at", "pk")
    )
    recipient = items[0].recipient
    problem, off = still_wanted(recipient, practice_id, {d.alert_type for d in items})
    if problem:
        NotificationDelivery.objects.filter(pk__in=ids).cancel(problem)
        return "cancelled"
    if off:
        NotificationDelivery.objects.filter(pk__in=[d.pk for d in items if d.alert_type in off]).cancel(TURNED_OFF)
        items = [d for d in items if d.alert_type not in off]
        if not items:
            return "cancelled"
    sending = [d.pk for d in items]
    message = emails.digest_message(deliveries=items, practice=practice, recipient=recipient)
    outcome = engine.send_one(Item(key=sending, to=recipient.email, payload=message), via=email_transport.for_one())
    if not outcome.sent:
        return fail_or_retry(sending, max(d.attempts for d in items), outcome.error)
    NotificationDelivery.objects.filter(pk__in=sending).mark_sent(timezone.now())
    return "sent"
