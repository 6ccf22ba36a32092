"""Two-factor sign-in for staff: a code from an authenticator app (TOTP, django-otp), with ten
single-use recovery codes for a lost phone.

Who is asked for a second factor after their password:
- every superuser, and every member of a practice that requires it (Practice.require_two_factor);
  without an authenticator yet, they enrol one before they can use the admin;
- anyone who enrolled one, whether required or not.
With DJANGO_DEBUG on (the demo, `bin/run`), the requirement is waived for accounts that have not
enrolled, so the demo logins work with a password alone; production never waives it.

The decision is taken when the password is accepted and kept in the session; the middleware then
keeps every admin page but the sign-in, sign-out, reset and two-factor pages closed until the second
factor is given (django-otp's OTPMiddleware says whether it was, checking the device still exists).
Codes are limited like passwords: 5 wrong codes for an account in 15 minutes sign the session out
(counted before they are checked), on top of django-otp's growing delay per device.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY, user_has_device
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core import throttle

from patients.models import Practice

NEEDED_SESSION_KEY = "staff_second_factor_needed"
CODE_LIMIT = ("staff-second-factor", 5, 15 * 60)
RECOVERY_CODE_COUNT = 10
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


# -- who is asked ---------------------------------------------------------------------------------


def required_for(user) -> bool:
    """Superusers always; practice members where one of their practices requires it."""
    if not (user.is_active and user.is_staff):
        return False
    return user.is_superuser or Practice.objects.filter(memberships__user=user, require_two_factor=True).exists()


def has_authenticator(user) -> bool:
    return user_has_device(user, confirmed=True)


def waived() -> bool:
    return settings.DEBUG


def needs_second_factor(user) -> bool:
    if not user.is_staff:
        return False
    return has_authenticator(user) or (required_for(user) and not waived())


@receiver(user_logged_in, dispatch_uid="patients.staff_auth.second_factor_at_sign_in")
def decide_at_sign_in(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[NEEDED_SESSION_KEY] = needs_second_factor(user)


# -- the admin stays closed until the second factor is given -----------------------------------


def _open_paths() -> tuple[str, ...]:
    return (
        reverse("admin:login"), reverse("admin:logout"), reverse("admin:jsi18n"),
        reverse("admin_password_reset"), "/admin/reset/", reverse("staff_two_factor"),
    )


class RequireSecondFactor:
    """After OTPMiddleware: a signed-in staff member who owes a second factor is sent to give it
    (or to enrol an authenticator) from every admin page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if (
            request.session.get(NEEDED_SESSION_KEY)
            and request.path.startswith(reverse("admin:index"))
            and not request.path.startswith(_open_paths())
            and request.user.is_authenticated
            and not request.user.is_verified()
        ):
            return HttpResponseRedirect(f"{reverse('staff_two_factor')}?next={quote(request.get_full_path())}")
        return self.get_response(request)


# -- codes ----------------------------------------------------------------------------------------


def normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def _recovery_hash(code: str) -> str:
    """Recovery codes are kept as a keyed hash (the first 16 hex digits of an HMAC), never as typed."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"recovery:{normalise(code)}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def new_recovery_codes(user) -> list[str]:
    """Replace the user's recovery codes with ten new ones; the codes, to be shown once."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
    codes = ["-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2)) for _ in range(RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_NAME, defaults={"confirmed": True})
        device.token_set.all().delete()
        StaticToken.objects.bulk_create([StaticToken(device=device, token=_recovery_hash(code)) for code in codes])
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def pending_authenticator(user) -> TOTPDevice:
    """The authenticator being enrolled: its key is shown (QR code) until a code from it confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def count_code_attempt(user) -> throttle.Attempt:
    scope, limit, window = CODE_LIMIT
    return throttle.attempt(scope, str(user.pk), limit=limit, window_seconds=window)


def verify(user, code: str):
    """The confirmed device that accepts `code` (a 6-digit authenticator code or a recovery code),
    or None. Each device is locked for the check, so a code is never accepted twice."""
    code = normalise(code)
    if code.isdigit() and len(code) == 6:
        candidates, token = TOTPDevice.objects.filter(user=user, confirmed=True), code
    else:
        candidates, token = StaticDevice.objects.filter(user=user, confirmed=True), _recovery_hash(code)
    with transaction.atomic():
        for device in candidates.select_for_update():
            if device.verify_token(token):
                return device
    return None


def confirm_enrolment(request: HttpRequest, device: TOTPDevice, code: str) -> bool:
    """Confirm the pending authenticator with a code from it; the session counts as verified."""
    code = normalise(code)
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if not (code.isdigit() and device.verify_token(code)):
            return False
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
    sign_in_verified(request, device)
    return True


def sign_in_verified(request: HttpRequest, device) -> None:
    otp_login(request, device)
    request.session[NEEDED_SESSION_KEY] = True  # from now on this account is always asked
    request.session.cycle_key()


def turn_off(user) -> None:
    """Remove the user's authenticator and recovery codes (only where not required)."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()


def is_verified_session(request: HttpRequest) -> bool:
    return bool(request.session.get(DEVICE_ID_SESSION_KEY)) and request.user.is_verified()
