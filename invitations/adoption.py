"""The portal access dashboard's figures, Activate Now's preview and the 12-month chart
(server-rendered SVG), with invitations and registrations split by channel (email, text).

Counting is a handful of aggregate queries over the practice's rows, but those scan every patient
against every eligibility rule: about 1 s at 100,000 patients and 10 s at a million on PostgreSQL.
So pages read a stored snapshot (`PracticeFigures`, one query) and a worker recounts it: beat
every 10 minutes (`invitations.tasks.refresh_all_practice_figures`), after a bulk run finishes, after the portal
switches change and on "Refresh now" (`request_refresh`). A snapshot older than
`FIGURES_MAX_AGE` is still shown, with the time it was counted, while a recount is enqueued.
"""

import datetime
import html
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Optional

from django.conf import settings
from django.db.models import Case, Count, DateTimeField, F, Q, When
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from core.queue import enqueue_on_commit
from patients.models import Patient, Practice

from invitations import eligibility, representatives
from invitations.models.figures import PracticeFigures
from invitations.models import Channel, Invitation
from invitations.patient_status import PortalStatus, with_portal_status

#: The inactive split shown on the dashboard, in this order (label, portal statuses).
INACTIVE_SPLIT = [
    ("never_invited", "Not invited", PortalStatus.NOT_INVITED),
    ("pending", "Invitation being sent", PortalStatus.PENDING),
    ("out", "Invitation out (sent, not expired)", PortalStatus.SENT),
    ("expired", "Invitation expired", PortalStatus.EXPIRED),
    ("failed", "Failed or bounced", PortalStatus.FAILED),
    ("revoked", "Invitation revoked", PortalStatus.REVOKED),
]
_SPLIT_BY_KEY = {key: (label, status) for key, label, status in INACTIVE_SPLIT}

#: The skip reasons the dashboard lists, each linking to the patient list filtered by it.
DASHBOARD_REASONS = {
    code: rule for code, rule in [*eligibility.RULES_BY_CODE.items(), (eligibility.CHILD_NO_REPRESENTATIVE.code, eligibility.CHILD_NO_REPRESENTATIVE)]
    if code not in eligibility.NOT_A_SKIP_FOR_DASHBOARD
}

#: A page showing a snapshot older than this enqueues a recount (and shows the old one meanwhile).
FIGURES_MAX_AGE = datetime.timedelta(minutes=10)
#: The beat job (every 10 minutes) recounts snapshots older than this, so pages rarely see one
#: past FIGURES_MAX_AGE.
BEAT_REFRESH_AFTER = datetime.timedelta(minutes=9)
#: A recount requested less than this long ago is taken as under way: page views, clicks and
#: finishing runs do not enqueue another. Past it the request is taken as lost (a worker died,
#: the broker dropped it) and the next one enqueues again.
REFRESH_CLAIM_FOR = datetime.timedelta(minutes=5)
#: Activate Now counts its preview live up to this many inactive patients (exact, well under a
#: second); above it, the page shows the snapshot's preview.
DEFAULT_LIVE_PREVIEW_MAX_INACTIVE = 50_000


def live_preview_max_inactive() -> int:
    return getattr(settings, "PORTAL_LIVE_PREVIEW_MAX_INACTIVE", DEFAULT_LIVE_PREVIEW_MAX_INACTIVE)


@dataclass
class Month:
    start: datetime.date
    #: Invitations that went out in the month (by their first channel; one sent by both counts once).
    sent: int = 0
    accepted: int = 0
    #: Emails and texts sent in the month (an invitation by both channels counts under each).
    emails: int = 0
    texts: int = 0
    #: Registrations in the month with the link of the text (the others used the email's).
    accepted_by_text: int = 0

    @property
    def accepted_by_email(self) -> int:
        return self.accepted - self.accepted_by_text

    @property
    def label(self) -> str:
        return self.start.strftime("%b %Y")

    @property
    def short_label(self) -> str:
        return self.start.strftime("%b")

    @property
    def rate(self) -> float | None:
        """Accepted as a share of sent in the month (None when nothing was sent)."""
        return self.accepted / self.sent if self.sent else None


@dataclass(frozen=True)
class ChannelFigures:
    """One channel over the chart's months: messages sent, registrations with its link."""

    channel: str
    label: str
    sent: int
    registered: int

    @property
    def rate(self) -> float | None:
        return self.registered / self.sent if self.sent else None


@dataclass
class Figures:
    total: int
    active: int
    inactive: int
    split: list[tuple[str, str, int, str]]  # key, label, count, portal status
    not_eligible: list[tuple[str, int]]  # rule code, patients
    #: Patients without an own account whom a parent, guardian or caregiver registered for: their
    #: representative linked their login (an access in force). Counted among the inactive.
    by_representative: int = 0
    months: list[Month] = field(default_factory=list)
    computed_at: datetime.datetime | None = None
    #: What Activate Now would do when these were counted (its preview, for every inactive patient).
    preview: eligibility.Preview = field(default_factory=lambda: eligibility.Preview(considered=0, eligible=0))
    #: A recount was enqueued and has not landed yet (read from the snapshot row; not stored).
    refresh_pending: bool = False

    @property
    def by_channel(self) -> list[ChannelFigures]:
        """Emails and texts sent over the chart's months, and the registrations each link brought."""
        return [
            ChannelFigures(Channel.EMAIL, "Email", sum(m.emails for m in self.months), sum(m.accepted_by_email for m in self.months)),
            ChannelFigures(Channel.TEXT, "Text message", sum(m.texts for m in self.months), sum(m.accepted_by_text for m in self.months)),
        ]

    @property
    def registered_by_text_share(self) -> float | None:
        """The share of the period's registrations that came through a text's link."""
        accepted = sum(m.accepted for m in self.months)
        return sum(m.accepted_by_text for m in self.months) / accepted if accepted else None

    def to_json(self) -> dict[str, Any]:
        """Counts only (no patient data): what `PracticeFigures.data` holds."""
        return {
            "total": self.total,
            "active": self.active,
            "by_representative": self.by_representative,
            "split": {key: count for key, _label, count, _status in self.split},
            "not_eligible": [[code, count] for code, count in self.not_eligible],
            "months": [
                {
                    "start": m.start.isoformat(), "sent": m.sent, "accepted": m.accepted,
                    "emails": m.emails, "texts": m.texts, "accepted_by_text": m.accepted_by_text,
                }
                for m in self.months
            ],
            "preview": {
                "considered": self.preview.considered,
                "eligible": self.preview.eligible,
                "representatives": self.preview.representatives,
                "skip_counts": self.preview.skip_counts,
                "emails": self.preview.emails,
                "texts": self.preview.texts,
            },
            "computed_at": self.computed_at.isoformat() if self.computed_at else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Figures":
        """The inverse of `to_json`. Labels and messages come from the code, not the snapshot, and
        a rule that no longer exists is dropped, so a snapshot taken before a deploy still shows
        (one from before texts: every invitation and registration was by email)."""
        split = data.get("split", {})
        preview = data.get("preview", {})
        computed_at = data.get("computed_at")
        return cls(
            total=data.get("total", 0),
            active=data.get("active", 0),
            inactive=data.get("total", 0) - data.get("active", 0),
            by_representative=data.get("by_representative", 0),
            split=[(key, label, split.get(key, 0), status) for key, label, status in INACTIVE_SPLIT],
            not_eligible=[(code, count) for code, count in data.get("not_eligible", []) if code in DASHBOARD_REASONS],
            months=[
                Month(
                    datetime.date.fromisoformat(m["start"]), sent=m["sent"], accepted=m["accepted"],
                    emails=m.get("emails", m["sent"]), texts=m.get("texts", 0), accepted_by_text=m.get("accepted_by_text", 0),
                )
                for m in data.get("months", [])
            ],
            computed_at=datetime.datetime.fromisoformat(computed_at) if computed_at else None,
            preview=eligibility.Preview(
                considered=preview.get("considered", 0),
                eligible=preview.get("eligible", 0),
                representatives=preview.get("representatives", 0),
                reasons=eligibility.reasons(preview.get("skip_counts", {}), rules_by_code=eligibility.BULK_RULES_BY_CODE),
                emails=preview.get("emails"),
                texts=preview.get("texts", 0),
            ),
        )


def month_starts(now: datetime.datetime, time_zone: str, count: int = 12) -> list[datetime.date]:
    local = now.astimezone(zoneinfo.ZoneInfo(time_zone)).date().replace(day=1)
    starts = [local]
    while len(starts) < count:
        previous = starts[-1] - datetime.timedelta(days=1)
        starts.append(previous.replace(day=1))
    return list(reversed(starts))


def figures(practice: Practice, *, now: datetime.datetime) -> Figures:
    """Count everything the dashboard and Activate Now's preview show (six queries: three scans of
    the practice's patients, one of its children's parents' accesses, two of its invitations).
    Pages read the snapshot (`current`) instead."""
    patients = Patient.objects.filter(practice_id=practice.pk)
    counts = with_portal_status(patients, now).aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(portal_user__isnull=False)),
        by_representative=Count("pk", filter=representatives.registered_via_representative(now)),
        **{status: Count("pk", filter=Q(portal_status=status)) for _, _, status in INACTIVE_SPLIT},
    )
    split = [(key, label, counts[status], status) for key, label, status in INACTIVE_SPLIT]
    # Activate Now's preview is the inactive patients (`bulk.candidates` of an Activate Now run),
    # the young children among them through their parents and guardians, counted by
    # `eligibility.tally_bulk` with the practice's channels for bulk runs (one scan of the patients
    # by every rule, a small one of the children, one of the parents' accesses). "Not eligible" is
    # the same count: the patients Activate Now would skip, and why (the reasons the patient list
    # can filter by; a parent's reasons are on Activate Now's page).
    inactive = patients.filter(portal_user__isnull=True)
    children = inactive.filter(eligibility.too_young(now))
    counted = eligibility.tally_bulk(
        inactive, children=children, accesses=eligibility.guardians_to_invite(children), now=now,
        plan=eligibility.bulk_plan(practice),
    )
    not_eligible = sorted(
        ((code, n) for code, n in counted.skip_counts.items() if n and code in DASHBOARD_REASONS),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return Figures(
        total=counts["total"],
        active=counts["active"],
        inactive=counts["total"] - counts["active"],
        by_representative=counts["by_representative"],
        split=split,
        not_eligible=not_eligible,
        months=monthly_funnel(practice, now=now),
        computed_at=now,
        preview=counted.preview(),
    )


# -- the stored snapshot -------------------------------------------------------------------


def refresh(practice: Practice, *, now: datetime.datetime) -> Figures:
    """Count the practice's figures and store them as its snapshot (the recount has landed)."""
    result = figures(practice, now=now)
    PracticeFigures.objects.update_or_create(
        practice_id=practice.pk,
        defaults={"computed_at": now, "data": result.to_json(), "refresh_requested_at": None},
    )
    return result


def current(practice: Practice, *, now: datetime.datetime) -> Figures:
    """The practice's stored figures (one query). The first visit counts and stores them; a
    snapshot older than FIGURES_MAX_AGE is returned as it is while a recount is enqueued."""
    snapshot = PracticeFigures.objects.filter(practice_id=practice.pk).first()
    if snapshot is None:
        return refresh(practice, now=now)
    result = Figures.from_json(snapshot.data)
    result.computed_at = snapshot.computed_at
    result.refresh_pending = _is_claimed(snapshot.refresh_requested_at, now=now)
    if not result.refresh_pending and now - snapshot.computed_at > FIGURES_MAX_AGE:
        result.refresh_pending = request_refresh(practice.pk, now=now)
    return result


def _is_claimed(requested_at: Optional[datetime.datetime], *, now: datetime.datetime) -> bool:
    return requested_at is not None and requested_at > now - REFRESH_CLAIM_FOR


def _claim(practice_id: int, *, now: datetime.datetime) -> bool:
    """Mark a recount of the practice's snapshot as under way, unless one already is (a
    conditional UPDATE: of two racing requests one wins). False when there is no snapshot yet."""
    # Only the row's own columns in the WHERE (see `bulk.claim_chunk`).
    return bool(
        PracticeFigures.objects.filter(practice_id=practice_id)
        .filter(Q(refresh_requested_at__isnull=True) | Q(refresh_requested_at__lte=now - REFRESH_CLAIM_FOR))
        .update(refresh_requested_at=now)
    )


def request_refresh(practice_id: int, *, now: Optional[datetime.datetime] = None) -> bool:
    """Enqueue a recount of the practice's figures (after commit), once per REFRESH_CLAIM_FOR.

    Returns whether this call enqueued it. A practice with no snapshot yet gets none: its first
    page view counts. A change made while a recount is already counting is picked up by the next
    one (at most 10 minutes later, by beat).
    """
    if not _claim(practice_id, now=now or timezone.now()):
        return False
    enqueue_on_commit("invitations.refresh_practice_figures", practice_id)
    return True


def refresh_requested(practice_id: int, *, now: datetime.datetime) -> bool:
    """The task of `request_refresh`: recount unless that has happened since (a redelivered
    task, or beat got there first). Returns whether it counted."""
    if not PracticeFigures.objects.filter(practice_id=practice_id, refresh_requested_at__isnull=False).exists():
        return False
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        return False
    refresh(practice, now=now)
    return True


def stale_practice_ids(*, now: datetime.datetime) -> list[int]:
    """Practices whose snapshot is older than BEAT_REFRESH_AFTER or missing, oldest first."""
    return list(
        Practice.objects.filter(Q(portal_figures__isnull=True) | Q(portal_figures__computed_at__lte=now - BEAT_REFRESH_AFTER))
        .order_by(F("portal_figures__computed_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)
    )


def refresh_if_stale(practice_id: int, *, now: datetime.datetime) -> bool:
    """Beat's recount of one practice: skipped when its snapshot is fresh or a recount is
    already under way (another worker, an overlapping beat run). Returns whether it counted."""
    practice = Practice.objects.filter(pk=practice_id).first()
    if practice is None:
        return False
    snapshot = PracticeFigures.objects.filter(practice_id=practice_id).values("computed_at").first()
    if snapshot is not None:
        if now - snapshot["computed_at"] < BEAT_REFRESH_AFTER or not _claim(practice_id, now=now):
            return False
    refresh(practice, now=now)
    return True


def _in_period(column: str, since: datetime.datetime, now: datetime.datetime) -> Case:
    """The column's time when it falls in [since, now], else NULL."""
    return Case(When(**{f"{column}__gte": since, f"{column}__lte": now}, then=F(column)), output_field=DateTimeField())


def _first_out() -> Case:
    """When an invitation first went out: its email or its text, whichever was first."""
    return Case(
        When(text_sent_at__isnull=True, then=F("sent_at")),
        When(sent_at__isnull=True, then=F("text_sent_at")),
        When(sent_at__lte=F("text_sent_at"), then=F("sent_at")),
        default=F("text_sent_at"),
        output_field=DateTimeField(),
    )


def _month_start(value) -> datetime.date | None:
    if value is None:
        return None
    return (value.date() if isinstance(value, datetime.datetime) else value).replace(day=1)


def monthly_funnel(practice: Practice, *, now: datetime.datetime) -> list[Month]:
    """Invitations sent and accepted in each of the last 12 months (the practice's months), split
    by channel: emails and texts sent, registrations with each link. Two queries, grouped by month
    (and channel) in the database."""
    tz = zoneinfo.ZoneInfo(practice.time_zone)
    starts = month_starts(now, practice.time_zone)
    since = datetime.datetime.combine(starts[0], datetime.time(), tzinfo=tz)
    months = {start: Month(start) for start in starts}
    invitations = Invitation.objects.filter(practice_id=practice.pk)
    sent_rows = (
        invitations.filter(Q(sent_at__gte=since, sent_at__lte=now) | Q(text_sent_at__gte=since, text_sent_at__lte=now))
        .annotate(first_out=_first_out())
        .annotate(
            email_month=TruncMonth(_in_period("sent_at", since, now), tzinfo=tz),
            text_month=TruncMonth(_in_period("text_sent_at", since, now), tzinfo=tz),
            out_month=TruncMonth(_in_period("first_out", since, now), tzinfo=tz),
        )
        .values("email_month", "text_month", "out_month").annotate(n=Count("pk")).order_by()
    )
    for row in sent_rows:
        for key, attribute in (("out_month", "sent"), ("email_month", "emails"), ("text_month", "texts")):
            month = months.get(_month_start(row[key]))
            if month is not None:
                setattr(month, attribute, getattr(month, attribute) + row["n"])
    accepted_rows = (
        invitations.filter(accepted_at__gte=since, accepted_at__lte=now)
        .annotate(month=TruncMonth("accepted_at", tzinfo=tz))
        .values("month", "accepted_via").annotate(n=Count("pk")).order_by()
    )
    for row in accepted_rows:
        month = months.get(_month_start(row["month"]))
        if month is not None:
            month.accepted += row["n"]
            if row["accepted_via"] == Channel.TEXT:
                month.accepted_by_text += row["n"]
    return [months[start] for start in starts]


# -- the chart ---------------------------------------------------------------------------------

SENT_COLOUR = "#0b5cad"
ACCEPTED_COLOUR = "#0e7c3a"
RATE_COLOUR = "#b45309"


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def chart_svg(months: list[Month], *, width: int = 760, height: int = 280) -> SafeString:
    """Bars for sent and accepted per month (left axis), a line for the acceptance rate (right
    axis, 0-100 %). Plain SVG with a title, a description and text labels: readable without
    JavaScript and by screen readers (the table under it carries the same numbers)."""
    left, right, top, bottom = 56, 56, 20, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max([m.sent for m in months] + [m.accepted for m in months] + [1]))
    slot = plot_w / max(len(months), 1)
    bar = slot * 0.32
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="funnel-title funnel-desc" style="max-width:{width}px;font-family:sans-serif;font-size:11px">',
        '<title id="funnel-title">Invitations sent and accepted per month, and the acceptance rate</title>',
        '<desc id="funnel-desc">'
        + html.escape("; ".join(
            f"{m.label}: {m.sent} sent, {m.accepted} accepted"
            + (f", {m.rate:.0%} accepted" if m.rate is not None else "")
            for m in months
        ))
        + "</desc>",
    ]
    for i in range(5):  # grid lines and left axis labels
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e7eb"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#3e4c59">{value:,.0f}</text>')
        parts.append(
            f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" fill="{RATE_COLOUR}">{25 * i}%</text>'
        )
    points = []
    for index, month in enumerate(months):
        x0 = left + slot * index + slot * 0.16
        for offset, value, colour, name in ((0, month.sent, SENT_COLOUR, "sent"), (bar, month.accepted, ACCEPTED_COLOUR, "accepted")):
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{x0 + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(month.label)}: {value:,} {name}</title></rect>"
            )
        cx = left + slot * index + slot / 2
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="#3e4c59">{html.escape(month.short_label)}</text>')
        if index == 0 or month.start.month == 1:
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 30}" text-anchor="middle" fill="#7b8794">{month.start.year}</text>')
        if month.rate is not None:
            points.append((cx, top + plot_h - plot_h * min(month.rate, 1)))
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{RATE_COLOUR}" stroke-width="2"/>')
    for x, y in points:
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{RATE_COLOUR}"/>')
    legend_y = height - 8
    for i, (colour, label) in enumerate(((SENT_COLOUR, "Sent"), (ACCEPTED_COLOUR, "Registered"), (RATE_COLOUR, "Registration rate (right axis)"))):
        x = left + i * 110
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}" fill="#1f2933">{label}</text>')
    parts.append("</svg>")
    # Only numbers, fixed words and escaped month labels went in above.
    return mark_safe("".join(parts))  # noqa: S308
