"""Payment-plan workflows: applying lender events, creating alerts, sending them exactly once.
(The daily digest is in `digests`; every delivery status change is a `NotificationDelivery`
queryset method.)

Exactly once, step by step:
1. An alert is a `NotificationDelivery` row per (application, type, recipient), created with
   `bulk_create(ignore_conflicts=True)` against a unique constraint, in the same transaction
   as the status change (or the sweep) that caused it. A duplicate event, a second sweep or a
   redelivered task cannot create a second row.
2. Whoever sends it first claims it (`NotificationDelivery.objects.claim`: `UPDATE ... SET
   status='sending' WHERE status='pending'`). Only the caller whose update touched the row
   sends the email.
3. Tasks are enqueued after commit; the 15-minute sweep re-enqueues pending rows whose task
   was lost. A row left in 'sending' (the worker died mid-send) is *not* resent automatically,
   because the email may have left: it is marked failed and staff can retry it in the admin.
"""

import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Optional

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.queue import enqueue_on_commit
from core.sending import engine
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from core.sending.errors import SendError
from patients.models import Membership, Practice

from . import emails
from .models import (
    IMMEDIATE_ALERTS,
    AlertType,
    ApplicationStatus,
    DeliveryMode,
    DeliveryStatus,
    EventOutcome,
    EventSource,
    LenderEvent,
    NotificationDelivery,
    NotificationPreference,
    NotificationSettings,
    PaymentPlanApplication,
)

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 3
SWEEP_BATCH = 200


def _now() -> datetime.datetime:
    return timezone.now()


# -- applying events -------------------------------------------------------------------------


class EventRejected(Exception):
    """The event cannot be applied; `code` and `detail` go back to the caller."""

    def __init__(self, code: str, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class EventResult:
    application: PaymentPlanApplication
    outcome: str  # "applied", "recorded" or "duplicate"


def apply_event(
    *,
    practice_id: int,
    event_id: str,
    lender_application_id: str,
    patient_id: int,
    event_type: str,
    occurred_at: datetime.datetime,
    now: datetime.datetime,
    source: str = EventSource.LENDER,
    actor=None,
    require_forward: bool = False,
) -> EventResult:
    """Apply one lender event (or a staff-recorded change) to its application.

    Idempotent per (practice, event id). Never moves an application back: an older event only
    fills in its step time. Immediate alerts are created in the same transaction and sent
    after it commits.
    """
    event_type = ApplicationStatus(event_type)
    with transaction.atomic():
        seen = _seen_event(practice_id, event_id)
        if seen is not None:
            return EventResult(seen.application, "duplicate")

        application, created = _locked_application(
            practice_id=practice_id,
            lender_application_id=lender_application_id,
            patient_id=patient_id,
            event_type=event_type,
            occurred_at=occurred_at,
            now=now,
        )
        if application.patient_id != patient_id:
            raise EventRejected(
                "patient_mismatch",
                f"Application {lender_application_id} belongs to another patient of this practice.",
                status=409,
            )
        if created:
            moved = True
        else:
            if require_forward and not application.can_move_to(event_type):
                raise EventRejected(
                    "status_backwards",
                    f"The application is already {application.get_status_display().lower()}; "
                    f"it cannot be set to {event_type.label.lower()}.",
                )
            moved = application.record_step(event_type, occurred_at)

        try:
            with transaction.atomic():
                LenderEvent.objects.create(
                    practice_id=practice_id,
                    application=application,
                    event_id=event_id,
                    event_type=event_type,
                    occurred_at=occurred_at,
                    received_at=now,
                    source=source,
                    actor=actor,
                    outcome=EventOutcome.APPLIED if moved else EventOutcome.RECORDED,
                )
        except IntegrityError:
            # The same event id committed by a concurrent request since our check: undo
            # anything this call did (such as creating the application) and answer as a duplicate.
            seen = _seen_event(practice_id, event_id)
            transaction.set_rollback(True)
            return EventResult(seen.application, "duplicate")

        if not created:
            application.save()
        if moved and event_type in IMMEDIATE_ALERTS:
            create_alerts(application=application, alert_type=IMMEDIATE_ALERTS[event_type], now=now)
    return EventResult(application, "applied" if moved else "recorded")


def record_status_change(
    *, application: PaymentPlanApplication, status: str, occurred_at: datetime.datetime, actor, now=None
) -> EventResult:
    """A status change staff record by hand in the admin: same rules and alerts as the lender's."""
    return apply_event(
        practice_id=application.practice_id,
        event_id=f"staff-{uuid.uuid4()}",
        lender_application_id=application.lender_application_id,
        patient_id=application.patient_id,
        event_type=status,
        occurred_at=occurred_at,
        now=now or _now(),
        source=EventSource.STAFF,
        actor=actor,
        require_forward=True,
    )


def _seen_event(practice_id: int, event_id: str) -> Optional[LenderEvent]:
    return LenderEvent.objects.select_related("application").filter(practice_id=practice_id, event_id=event_id).first()


def _locked_application(
    *, practice_id, lender_application_id, patient_id, event_type, occurred_at, now
) -> tuple[PaymentPlanApplication, bool]:
    def locked():
        return (
            PaymentPlanApplication.objects.select_for_update()
            .filter(practice_id=practice_id, lender_application_id=lender_application_id)
            .first()
        )

    application = locked()
    if application is not None:
        return application, False
    application = PaymentPlanApplication(
        practice_id=practice_id,
        patient_id=patient_id,
        lender_application_id=lender_application_id,
        status=event_type,
        created_at=now,
    )
    setattr(application, f"{event_type}_at", occurred_at)
    application.refresh_due_times()
    try:
        with transaction.atomic():
            application.save()
    except IntegrityError:
        # Another request created it a moment ago: apply to theirs.
        return locked(), False
    return application, True


# -- recipients and alerts -------------------------------------------------------------------


def recipients(*, practice_id: int, alert_type: str) -> list[tuple[int, str]]:
    """(user id, delivery mode) of the practice's team members who want this alert type.

    Team members are active staff users with a membership at the practice and an email
    address. No preference row means on; no settings row means immediate.
    """
    User = get_user_model()
    switched_off = NotificationPreference.objects.filter(
        user=OuterRef("pk"), practice_id=practice_id, alert_type=alert_type, enabled=False
    )
    mode = NotificationSettings.objects.filter(user=OuterRef("pk"), practice_id=practice_id).values(
        "delivery_mode"
    )[:1]
    return list(
        User.objects.filter(is_active=True, is_staff=True, memberships__practice_id=practice_id)
        .exclude(email="")
        .exclude(Exists(switched_off))
        .annotate(mode=Coalesce(Subquery(mode), Value(DeliveryMode.IMMEDIATE)))
        .order_by("pk")
        .values_list("pk", "mode")
    )


def create_alerts(
    *,
    application: PaymentPlanApplication,
    alert_type: str,
    now: datetime.datetime,
    recipient_modes: Optional[list[tuple[int, str]]] = None,
) -> None:
    """Create the alert's delivery rows (once per recipient, whatever happens) and send the
    immediate ones after commit. Must run inside the transaction that caused the alert."""
    if recipient_modes is None:
        recipient_modes = recipients(practice_id=application.practice_id, alert_type=alert_type)
    NotificationDelivery.objects.bulk_create(
        [
            NotificationDelivery(
                practice_id=application.practice_id,
                application=application,
                alert_type=alert_type,
                recipient_id=user_id,
                delivery_mode=mode,
                created_at=now,
            )
            for user_id, mode in recipient_modes
        ],
        ignore_conflicts=True,
    )
    _send_after_commit(
        NotificationDelivery.objects.pending(DeliveryMode.IMMEDIATE).filter(application=application, alert_type=alert_type)
    )


def _send_after_commit(deliveries: QuerySet) -> int:
    ids = list(deliveries.values_list("pk", flat=True))
    for delivery_id in ids:
        enqueue_on_commit("notifications.send_delivery", delivery_id)
    return len(ids)


# -- the sweep (every 15 minutes) ------------------------------------------------------------


@dataclass
class SweepReport:
    incomplete: int = 0
    open_approval: int = 0
    requeued: int = 0
    interrupted: int = 0


_SCHEDULED = (
    # (report field, queryset method, alert type, "alerted at" field, "due at" field)
    ("incomplete", "incomplete_due", AlertType.INCOMPLETE, "incomplete_alerted_at", "incomplete_due_at"),
    ("open_approval", "open_approval_due", AlertType.OPEN_APPROVAL, "open_approval_alerted_at", "open_approval_due_at"),
)


def sweep(*, now: datetime.datetime) -> SweepReport:
    report = SweepReport()
    for field, method, alert_type, alerted_field, due_field in _SCHEDULED:
        setattr(report, field, _create_due(now, method, alert_type, alerted_field, due_field))
    report.interrupted = NotificationDelivery.objects.fail_interrupted(now)
    report.requeued = requeue_lost(now=now)
    return report


def _create_due(now, method, alert_type, alerted_field, due_field) -> int:
    """Claim due applications a batch at a time (rows another sweep holds are skipped), create
    their alerts and clear the due time in the same transaction."""
    total = 0
    while True:
        with transaction.atomic():
            batch = list(
                getattr(PaymentPlanApplication.objects, method)(now)
                .select_for_update(skip_locked=True)
                .order_by("pk")[:SWEEP_BATCH]
            )
            if not batch:
                return total
            recipient_cache: dict[int, list[tuple[int, str]]] = {}
            for application in batch:
                if application.practice_id not in recipient_cache:
                    recipient_cache[application.practice_id] = recipients(
                        practice_id=application.practice_id, alert_type=alert_type
                    )
                create_alerts(
                    application=application,
                    alert_type=alert_type,
                    now=now,
                    recipient_modes=recipient_cache[application.practice_id],
                )
            PaymentPlanApplication.objects.filter(pk__in=[a.pk for a in batch]).update(
                **{alerted_field: now, due_field: None}
            )
            total += len(batch)


def requeue_lost(*, now: datetime.datetime) -> int:
    lost = NotificationDelivery.objects.lost(now).order_by("pk")[:500]
    return _send_after_commit(NotificationDelivery.objects.filter(pk__in=list(lost.values_list("pk", flat=True))))


# -- sending ---------------------------------------------------------------------------------


TURNED_OFF = "The recipient turned this alert type off."


class RetryLater(Exception):
    """The send failed for a reason that may pass; the task retries (not sooner than
    `retry_after` seconds when the provider said)."""

    def __init__(self, detail: str, *, retry_after: Optional[float] = None):
        super().__init__(detail)
        self.retry_after = retry_after


def still_wanted(recipient, practice_id: int, alert_types: set[str]) -> tuple[Optional[str], set[str]]:
    """Why the recipient should get nothing any more (or None), and which types they turned off."""
    if not recipient.is_active or not recipient.is_staff:
        return "The recipient's account is no longer active.", set()
    if not recipient.email:
        return "The recipient has no email address.", set()
    if not Membership.objects.filter(user=recipient, practice_id=practice_id).exists():
        return "The recipient is no longer a member of this practice.", set()
    off = set(
        NotificationPreference.objects.filter(
            user=recipient, practice_id=practice_id, alert_type__in=alert_types, enabled=False
        ).values_list("alert_type", flat=True)
    )
    return None, off


def deliver_alert(delivery_id: int, *, now: Optional[datetime.datetime] = None) -> str:
    """Send one immediate alert if nobody has. Returns "sent", "skipped", "cancelled" or
    "failed"; raises RetryLater when the task should try again."""
    now = now or _now()
    claimed = NotificationDelivery.objects.filter(pk=delivery_id, delivery_mode=DeliveryMode.IMMEDIATE).claim(now)
    if not claimed:
        return "skipped"
    delivery = NotificationDelivery.objects.select_related(
        "application__patient", "practice", "recipient"
    ).get(pk=delivery_id)
    problem, off = still_wanted(delivery.recipient, delivery.practice_id, {delivery.alert_type})
    this_one = NotificationDelivery.objects.filter(pk=delivery_id)
    if problem or off:
        this_one.cancel(problem or TURNED_OFF)
        return "cancelled"
    # Through the provider account's shared rate, classified like every other email.
    message = emails.alert_message(delivery)
    outcome = engine.send_one(Item(key=delivery_id, to=delivery.recipient.email, payload=message), via=email_transport.for_one())
    if not outcome.sent:
        return fail_or_retry([delivery_id], delivery.attempts, outcome.error)
    this_one.mark_sent(timezone.now())
    return "sent"


def fail_or_retry(ids: list[int], attempts: int, error: SendError) -> str:
    """After a failed send of claimed deliveries: a refused address fails at once; anything else
    (throttled, an outage, our account) is released and tried again by the task until
    MAX_SEND_ATTEMPTS (raises RetryLater)."""
    logger.warning("Alert email failed (deliveries %s, attempt %s): %s", ids, attempts, error.detail.split(":")[0])
    claimed = NotificationDelivery.objects.filter(pk__in=ids)
    if error.is_refused or attempts >= MAX_SEND_ATTEMPTS:
        claimed.mark_failed(error.detail)
        return "failed"
    claimed.release(error.detail)
    raise RetryLater(error.detail, retry_after=error.retry_after)


def retry_deliveries(queryset: QuerySet) -> int:
    """Staff retry of failed alerts: each goes out again now as a single email."""
    with transaction.atomic():
        ids = list(queryset.filter(status=DeliveryStatus.FAILED).values_list("pk", flat=True))
        NotificationDelivery.objects.filter(pk__in=ids).retry_failed()
        _send_after_commit(NotificationDelivery.objects.filter(pk__in=ids).pending(DeliveryMode.IMMEDIATE))
    return len(ids)


# -- preferences -----------------------------------------------------------------------------


def save_preferences(*, user, practice: Practice, enabled: dict[str, bool], delivery_mode: str) -> None:
    """A member's choices for one office: which alert types, and immediately or as a digest."""
    with transaction.atomic():
        for alert_type, on in enabled.items():
            NotificationPreference.objects.update_or_create(
                user=user, practice=practice, alert_type=alert_type, defaults={"enabled": on}
            )
        NotificationSettings.objects.update_or_create(
            user=user, practice=practice, defaults={"delivery_mode": delivery_mode}
        )
