"""A patient's portal status as staff see it (Not invited, Pending, Sent, Expired, Failed,
Revoked, Active), computed from the latest invitation in the same query as the patient list.
"""

import datetime

from django.db.models import Case, CharField, F, FilteredRelation, Q, QuerySet, Value, When
from django.utils.html import format_html

from invitations.models import Status, run_out


class PortalStatus:
    NOT_INVITED = "not_invited"
    PENDING = "pending"
    SENT = "sent"
    EXPIRED = "expired"
    FAILED = "failed"
    REVOKED = "revoked"
    ACTIVE = "active"

    LABELS = {
        NOT_INVITED: "Not invited",
        PENDING: "Being sent",
        SENT: "Sent",
        EXPIRED: "Expired",
        FAILED: "Failed",
        REVOKED: "Revoked",
        ACTIVE: "Registered",
    }
    # Foreground / background pairs with at least 4.5:1 contrast.
    COLOURS = {
        NOT_INVITED: ("#3e4c59", "#e4e7eb"),
        PENDING: ("#7c5e10", "#fcefc7"),
        SENT: ("#0b4a8b", "#dceefb"),
        EXPIRED: ("#8d2b0b", "#ffe8d9"),
        FAILED: ("#ffffff", "#ab091e"),
        REVOKED: ("#3e4c59", "#f5f7fa"),
        ACTIVE: ("#ffffff", "#0e7c3a"),
    }
    CHOICES = list(LABELS.items())


def with_portal_status(patients: QuerySet, now: datetime.datetime) -> QuerySet:
    """Annotate each patient with `portal_status` (a PortalStatus value), computed in SQL from
    the latest invitation (one LEFT JOIN on the `is_latest` row; no per-row queries).
    The status column, its filter and its ordering all read this one annotation."""
    return patients.annotate(
        latest_invitation=FilteredRelation("invitations", condition=Q(invitations__is_latest=True)),
    ).annotate(
        latest_invitation_status=F("latest_invitation__status"),
        latest_invitation_expires=F("latest_invitation__expires_at"),
    ).annotate(
        portal_status=Case(
            When(portal_user__isnull=False, then=Value(PortalStatus.ACTIVE)),
            When(
                Q(latest_invitation_status__isnull=True) | Q(latest_invitation_status=Status.ACCEPTED),
                then=Value(PortalStatus.NOT_INVITED),
            ),
            # Run out but not yet marked by the sweep: staff see it as expired already.
            When(run_out(now, via="latest_invitation__"), then=Value(PortalStatus.EXPIRED)),
            default=F("latest_invitation_status"),
            output_field=CharField(),
        )
    )


def portal_status_condition(value: str, now: datetime.datetime) -> Q:
    """The rows whose `portal_status` annotation is `value`, written as plain conditions on the
    joined columns: PostgreSQL cannot estimate a filter on the CASE and counted a million
    patients with a hash join (~1 s); on these it stops after the first page's rows."""
    if value == PortalStatus.ACTIVE:
        return Q(portal_user__isnull=False)
    status = "latest_invitation_status"
    conditions = {
        PortalStatus.NOT_INVITED: Q(**{f"{status}__isnull": True}) | Q(**{status: Status.ACCEPTED}),
        PortalStatus.EXPIRED: Q(**{status: Status.EXPIRED}) | run_out(now, via="latest_invitation__"),
        PortalStatus.PENDING: Q(**{status: Status.PENDING, "latest_invitation_expires__gt": now}),
        PortalStatus.SENT: Q(**{status: Status.SENT, "latest_invitation_expires__gt": now}),
        PortalStatus.FAILED: Q(**{status: Status.FAILED}),
        PortalStatus.REVOKED: Q(**{status: Status.REVOKED}),
    }
    return Q(portal_user__isnull=True) & conditions[value]


def filter_by_portal_status(patients: QuerySet, value: str, now: datetime.datetime) -> QuerySet:
    """`patients` must be annotated by `with_portal_status` (at the same `now`)."""
    if value not in PortalStatus.LABELS:
        return patients
    return patients.filter(portal_status_condition(value, now))


def status_tag(status: str) -> str:
    fg, bg = PortalStatus.COLOURS[status]
    return format_html(
        '<span class="portal-status portal-status-{}" style="display:inline-block;padding:1px 8px;'
        'border-radius:10px;font-weight:600;font-size:11px;white-space:nowrap;color:{};background:{};">{}</span>',
        status, fg, bg, PortalStatus.LABELS[status],
    )
