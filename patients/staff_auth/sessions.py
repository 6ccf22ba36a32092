"""Signed-in sessions end when left idle, and after a working day whatever happens.

- Staff: after their practice's idle time (Practice.staff_idle_minutes, default 30; the shortest of
  their practices'; PORTAL_STAFF_IDLE_MINUTES for a superuser without practices).
- Patients and representatives: after PORTAL_PATIENT_IDLE_MINUTES (15).
- Everyone: PORTAL_SESSION_MAX_HOURS (12) after signing in, however active.
A session used to last two weeks. There is no "remember me" for staff.

The clock is kept in the session and written at most once a minute (not on every request), which is
also when the staff member's idle time is read again from their practices. A GET that asks for JSON
(the Activate Now progress bar's poll) is not activity: a page left open does not keep a session
alive. Whoever is signed out is told why on the sign-in page.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.db.models import Min
from django.dispatch import receiver
from django.http import HttpRequest

from patients.models import Practice

LAST_SEEN_KEY = "idle_last_seen"
SIGNED_IN_KEY = "idle_signed_in_at"
IDLE_LIMIT_KEY = "idle_limit_seconds"
WRITE_EVERY_SECONDS = 60
EXPIRY_GRACE_SECONDS = 10 * 60


def idle_seconds_for(user) -> int:
    if user.is_staff:
        minutes = Practice.objects.filter(memberships__user=user).aggregate(shortest=Min("staff_idle_minutes"))["shortest"]
        return 60 * (minutes or settings.PORTAL_STAFF_IDLE_MINUTES)
    return 60 * settings.PORTAL_PATIENT_IDLE_MINUTES


def _start(session, user, now: float) -> None:
    limit = idle_seconds_for(user)
    session[LAST_SEEN_KEY] = now
    session[IDLE_LIMIT_KEY] = limit
    # The cookie and the stored session end a little after the limit, so that the next request
    # still finds the session and can say why it was signed out.
    session.set_expiry(limit + EXPIRY_GRACE_SECONDS)


@receiver(user_logged_in, dispatch_uid="patients.staff_auth.idle_clock_at_sign_in")
def start_the_clock(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SIGNED_IN_KEY] = now
        _start(request.session, user, now)


def _is_background(request: HttpRequest) -> bool:
    return request.method == "GET" and request.headers.get("Accept", "").startswith("application/json")


class IdleTimeout:
    """After AuthenticationMiddleware and MessageMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        session = request.session
        last_seen = session.get(LAST_SEEN_KEY)
        if last_seen is not None:
            now = time.time()
            limit = session.get(IDLE_LIMIT_KEY, 60 * settings.PORTAL_PATIENT_IDLE_MINUTES)
            signed_in_at = session.get(SIGNED_IN_KEY, last_seen)
            if now - last_seen > limit:
                logout(request)
                messages.info(request, f"You were signed out after {limit // 60} minutes without activity. Please sign in again.")
            elif now - signed_in_at > settings.PORTAL_SESSION_MAX_HOURS * 3600:
                logout(request)
                messages.info(request, f"You were signed out {settings.PORTAL_SESSION_MAX_HOURS} hours after signing in. Please sign in again.")
            elif now - last_seen >= WRITE_EVERY_SECONDS and not _is_background(request) and request.user.is_authenticated:
                _start(session, request.user, now)
        return self.get_response(request)
