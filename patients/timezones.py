"""Staff pages show times in the practice's time zone, named once on the page.

A staff user whose practices share one time zone (the front desk of one office: nearly everyone)
sees every time, on every admin page, in that zone. Superusers and members of offices in different
zones see the server's zone, except on a page about one practice's rows (a patient, a run), which
overrides it with that practice's zone. The zone in force is named in the page header
(templates/admin/base_site.html).
"""

import zoneinfo
from typing import Optional

from django.utils import timezone

from .models import Membership


def staff_time_zone(user) -> Optional[str]:
    """The one time zone of the user's practices, or None (none, several, or a superuser)."""
    if not (user.is_authenticated and user.is_staff) or user.is_superuser:
        return None
    zones = set(Membership.objects.filter(user_id=user.pk).values_list("practice__time_zone", flat=True)[:20])
    return zones.pop() if len(zones) == 1 else None


class PracticeTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = staff_time_zone(request.user) if request.path.startswith("/admin/") else None
        if zone is None:
            return self.get_response(request)
        with timezone.override(zoneinfo.ZoneInfo(zone)):
            return self.get_response(request)
