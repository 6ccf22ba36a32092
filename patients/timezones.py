"""One clock for staff: every time on a staff page is in the time zone of the practice its row
belongs to, in one format (portal_project/formats: "Dec. 7, 2026, 8:11 AM"), and the zone is named in
words ("Eastern Time").

* A staff user whose practices share one time zone (the front desk of one office: nearly everyone,
  and a superuser of an install whose practices share one) sees every time on every admin page in
  that zone, named once in the page header (templates/admin/base_site.html).
* A page about one practice's rows (a patient, a run, a dashboard, a change page) is in that
  practice's zone for anyone (`PracticeLocalTimes.change_view`, and the apps' own pages).
* A list whose rows belong to practices in different zones (a member of two offices, a
  superuser) shows each row's times in its own practice's zone with the zone's name after them
  (`PracticeLocalTimes`); the header says so. Times about no practice (system status) are in the
  server's zone, named in the header.
"""

import datetime
import re
import zoneinfo
from typing import Callable, Optional

from django.contrib import admin
from django.db import models
from django.db.models import F
from django.utils import formats, timezone

from patients.models import Membership, Practice

#: How people name the zones of the countries practices are in (patients.models.COUNTRY_CHOICES).
ZONE_WORDS = {
    "UTC": "UTC",
    "Etc/UTC": "UTC",
    "America/New_York": "Eastern Time",
    "America/Detroit": "Eastern Time",
    "America/Toronto": "Eastern Time",
    "America/Chicago": "Central Time",
    "America/Winnipeg": "Central Time",
    "America/Regina": "Saskatchewan Time",
    "America/Denver": "Mountain Time",
    "America/Boise": "Mountain Time",
    "America/Edmonton": "Mountain Time",
    "America/Phoenix": "Arizona Time",
    "America/Los_Angeles": "Pacific Time",
    "America/Vancouver": "Pacific Time",
    "America/Anchorage": "Alaska Time",
    "America/Juneau": "Alaska Time",
    "America/Adak": "Hawaii-Aleutian Time",
    "Pacific/Honolulu": "Hawaii Time",
    "America/Halifax": "Atlantic Time",
    "America/Puerto_Rico": "Atlantic Time",
    "America/St_Johns": "Newfoundland Time",
    "Europe/London": "UK Time",
    "Europe/Dublin": "Irish Time",
    "Australia/Sydney": "Australian Eastern Time",
    "Australia/Melbourne": "Australian Eastern Time",
    "Australia/Hobart": "Australian Eastern Time",
    "Australia/Brisbane": "Queensland Time",
    "Australia/Adelaide": "Australian Central Time",
    "Australia/Darwin": "Australian Central Time",
    "Australia/Perth": "Australian Western Time",
    "Pacific/Auckland": "New Zealand Time",
}
#: Zones named after a region rather than a city, by their prefix.
ZONE_PREFIX_WORDS = {
    "America/Indiana/": "Eastern Time",
    "America/Kentucky/": "Eastern Time",
    "America/North_Dakota/": "Central Time",
}


def zone_in_words(name: str) -> str:
    """ "Eastern Time" for America/New_York; "Lisbon time" for a zone without a common name."""
    name = str(name or "UTC")
    if name in ZONE_WORDS:
        return ZONE_WORDS[name]
    for prefix, words in ZONE_PREFIX_WORDS.items():
        if name.startswith(prefix):
            return words
    city = name.rsplit("/", 1)[-1].replace("_", " ")
    return f"{city} time" if re.fullmatch(r"[A-Za-z .'-]+", city) else name


def local_time(moment: Optional[datetime.datetime], zone: Optional[str] = None, *, with_zone: bool = False) -> str:
    """`moment` in the one format, in `zone` (a practice's; default: the page's), with the zone's
    name after it when `with_zone`; "" for no time."""
    if moment is None:
        return ""
    tz = zoneinfo.ZoneInfo(zone) if zone else timezone.get_current_timezone()
    text = formats.date_format(timezone.localtime(moment, tz), "DATETIME_FORMAT")
    return f"{text} {zone_in_words(zone or timezone.get_current_timezone_name())}" if with_zone else text


def staff_time_zones(user) -> frozenset[str]:
    """The time zones of the practices the user works in (every practice's for a superuser);
    empty for anyone else. Read once per user object (a request's user)."""
    if not (user.is_authenticated and user.is_staff):
        return frozenset()
    cached = getattr(user, "_practice_time_zones", None)
    if cached is None:
        if user.is_superuser:
            zones = Practice.objects.order_by().values_list("time_zone", flat=True).distinct()[:20]
        else:
            zones = Membership.objects.filter(user_id=user.pk).values_list("practice__time_zone", flat=True)[:20]
        cached = user._practice_time_zones = frozenset(zones)
    return cached


def staff_time_zone(user) -> Optional[str]:
    """The one time zone of the user's practices, or None (none, or several)."""
    zones = staff_time_zones(user)
    return next(iter(zones)) if len(zones) == 1 else None


class PracticeTimeZoneMiddleware:
    """Staff pages run in the user's one practice zone, when all their practices share it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = staff_time_zone(request.user) if request.path.startswith("/admin/") else None
        if zone is None:
            return self.get_response(request)
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            return self.get_response(request)


def in_time_zone(zone: Optional[str]):
    """A context manager: the page's times in `zone` (a practice's), or as they are for None."""
    if not zone:
        return timezone.override(timezone.get_current_timezone())
    return timezone.override(zoneinfo.ZoneInfo(zone))


class PracticeLocalTimes:
    """For a ModelAdmin whose rows belong to a practice (`practice_lookup`, as in
    PracticeScopedAdmin): the list shows each date-time column in the row's practice zone, with
    the zone named after it when the user's practices are in several zones, and a row's change
    page runs in its practice's zone."""

    practice_lookup = "practice"

    def _zone_lookup(self) -> str:
        return "time_zone" if self.practice_lookup == "pk" else f"{self.practice_lookup}__time_zone"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_row_time_zone=F(self._zone_lookup()))

    def times_per_practice(self, request) -> bool:
        """Whether this user's rows are in more than one zone."""
        return len(staff_time_zones(request.user)) > 1

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        with_zone = self.times_per_practice(request)
        return [self._time_column(column, with_zone) if self._is_date_time(column) else column for column in columns]

    def _is_date_time(self, column) -> bool:
        if not isinstance(column, str):
            return False
        try:
            return isinstance(self.model._meta.get_field(column), models.DateTimeField)
        except Exception:  # noqa: BLE001 - a method or property name, not a field
            return False

    def _time_column(self, name: str, with_zone: bool) -> Callable:
        field = self.model._meta.get_field(name)

        @admin.display(description=field.verbose_name, ordering=name, empty_value="—")
        def column(obj):
            return local_time(getattr(obj, name), getattr(obj, "_row_time_zone", None), with_zone=with_zone) or None

        column.__name__ = name
        return column

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "times_per_practice": self.times_per_practice(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        zone = (
            self.get_queryset(request).filter(pk=object_id).values_list("_row_time_zone", flat=True).first()
            if str(object_id).isdigit() else None
        )
        with in_time_zone(zone):
            return super().change_view(request, object_id, form_url, extra_context)
