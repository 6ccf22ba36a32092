"""The portal access dashboard's figures and its 12-month chart (server-rendered SVG).

Every figure is one aggregate query over the practice's rows, so the page costs the same
handful of queries for 100 patients or a million.
"""

import datetime
import html
import zoneinfo
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.functions import TruncMonth
from django.utils.safestring import SafeString, mark_safe

from patients.models import Patient, Practice

from . import eligibility
from .bulk import NOT_A_SKIP_FOR_DASHBOARD
from .models import Invitation
from .portal_status import PortalStatus, with_portal_status

#: The inactive split shown on the dashboard, in this order (label, portal statuses).
INACTIVE_SPLIT = [
    ("never_invited", "Never invited", PortalStatus.NOT_INVITED),
    ("pending", "Invitation being sent", PortalStatus.PENDING),
    ("out", "Invitation out (sent, not expired)", PortalStatus.SENT),
    ("expired", "Invitation expired", PortalStatus.EXPIRED),
    ("failed", "Failed or bounced", PortalStatus.FAILED),
    ("revoked", "Invitation revoked", PortalStatus.REVOKED),
]


@dataclass
class Month:
    start: datetime.date
    sent: int = 0
    accepted: int = 0

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


@dataclass
class Figures:
    total: int
    active: int
    inactive: int
    split: list[tuple[str, str, int, str]]  # key, label, count, portal status
    not_eligible: list[tuple[str, int]]  # rule code, patients
    months: list[Month] = field(default_factory=list)
    computed_at: datetime.datetime | None = None


def month_starts(now: datetime.datetime, time_zone: str, count: int = 12) -> list[datetime.date]:
    local = now.astimezone(zoneinfo.ZoneInfo(time_zone)).date().replace(day=1)
    starts = [local]
    while len(starts) < count:
        previous = starts[-1] - datetime.timedelta(days=1)
        starts.append(previous.replace(day=1))
    return list(reversed(starts))


def figures(practice: Practice, *, now: datetime.datetime) -> Figures:
    patients = Patient.objects.filter(practice_id=practice.pk)
    counts = with_portal_status(patients, now).aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(portal_user__isnull=False)),
        **{status: Count("pk", filter=Q(portal_status=status)) for _, _, status in INACTIVE_SPLIT},
    )
    split = [(key, label, counts[status], status) for key, label, status in INACTIVE_SPLIT]
    blocked = eligibility.skip_counts(patients.filter(portal_user__isnull=True), now=now)
    not_eligible = sorted(
        ((code, n) for code, n in blocked.items() if n and code not in NOT_A_SKIP_FOR_DASHBOARD),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return Figures(
        total=counts["total"],
        active=counts["active"],
        inactive=counts["total"] - counts["active"],
        split=split,
        not_eligible=not_eligible,
        months=monthly_funnel(practice, now=now),
        computed_at=now,
    )


#: The figures scan every patient of the practice (about 3 s for 500,000 on a small server), so a
#: page view reuses them for a few minutes; "Refresh" on the page and a settings change recompute.
FIGURES_CACHE_SECONDS = 300


def _cache_key(practice_id: int) -> str:
    return f"portal-dashboard-figures:{practice_id}"


def cached_figures(practice: Practice, *, now: datetime.datetime, refresh: bool = False) -> Figures:
    if not refresh:
        cached = cache.get(_cache_key(practice.pk))
        if cached is not None:
            return cached
    result = figures(practice, now=now)
    cache.set(_cache_key(practice.pk), result, FIGURES_CACHE_SECONDS)
    return result


def forget_figures(practice_id: int) -> None:
    cache.delete(_cache_key(practice_id))


def monthly_funnel(practice: Practice, *, now: datetime.datetime) -> list[Month]:
    """Invitations sent and accepted in each of the last 12 months (the practice's months)."""
    tz = zoneinfo.ZoneInfo(practice.time_zone)
    starts = month_starts(now, practice.time_zone)
    since = datetime.datetime.combine(starts[0], datetime.time(), tzinfo=tz)
    months = {start: Month(start) for start in starts}
    invitations = Invitation.objects.filter(practice_id=practice.pk)
    for column, attribute in (("sent_at", "sent"), ("accepted_at", "accepted")):
        rows = (
            invitations.filter(**{f"{column}__gte": since, f"{column}__lte": now})
            .annotate(month=TruncMonth(column, tzinfo=tz))
            .values("month").annotate(n=Count("pk")).order_by()
        )
        for row in rows:
            month = row["month"]
            key = (month.date() if isinstance(month, datetime.datetime) else month).replace(day=1)
            if key in months:
                setattr(months[key], attribute, row["n"])
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
    for i, (colour, label) in enumerate(((SENT_COLOUR, "Sent"), (ACCEPTED_COLOUR, "Accepted"), (RATE_COLOUR, "Acceptance rate (right axis)"))):
        x = left + i * 110
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}" fill="#1f2933">{label}</text>')
    parts.append("</svg>")
    # Only numbers, fixed words and escaped month labels went in above.
    return mark_safe("".join(parts))  # noqa: S308
