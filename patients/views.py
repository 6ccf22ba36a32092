import mimetypes

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.views import PasswordResetView
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core import throttle

from . import health


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors: 200 when the database, the broker and a worker are fine, else 503."""
    checks = health.run_all()
    healthy = all(check.ok for check in checks)
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", "checks": {c.name: c.as_json() for c in checks}},
        status=200 if healthy else 503,
    )


# -- staff sign-in and password reset (the admin's) ---------------------------------------------

#: Failed sign-ins per client address per window (seconds): password guessing from one place. Only
#: failures count, so an office behind one router signing in at opening time is never refused.
STAFF_LOGIN_LIMIT = (10, 300)
#: Failed sign-ins of one account, from any address, before it is locked for the window: guessing
#: one staff password from many places.
STAFF_ACCOUNT_LIMIT = (10, 15 * 60)
STAFF_RESET_LIMIT = (5, 3600)
ACCOUNT_LOCKED = (
    "This account is locked for 15 minutes after too many failed sign-ins. Wait, or reset your password "
    "with the link below; your practice admin can help too."
)
ADDRESS_LIMITED = "Too many failed sign-ins from this address. Wait a few minutes and try again."


def _refused_login(request: HttpRequest, message: str):
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "form": AdminAuthenticationForm(request),
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    messages.error(request, message)
    return TemplateResponse(request, "admin/login.html", context, status=429)


def staff_login(request: HttpRequest):
    """The admin's login, with limits on failed attempts per client address and per account."""
    if request.method != "POST":
        return admin.site.login(request)
    address = throttle.client_ip(request)
    account = (request.POST.get("username") or "").strip().lower()
    if account and throttle.exceeded("staff-login-account", account, limit=STAFF_ACCOUNT_LIMIT[0], window_seconds=STAFF_ACCOUNT_LIMIT[1]):
        return _refused_login(request, ACCOUNT_LOCKED)
    if throttle.exceeded("staff-login", address, limit=STAFF_LOGIN_LIMIT[0], window_seconds=STAFF_LOGIN_LIMIT[1]):
        return _refused_login(request, ADDRESS_LIMITED)
    response = admin.site.login(request)
    if not request.user.is_authenticated:  # the password (or the account) was wrong
        throttle.hit("staff-login", address, window_seconds=STAFF_LOGIN_LIMIT[1])
        if account:
            throttle.hit("staff-login-account", account, window_seconds=STAFF_ACCOUNT_LIMIT[1])
    return response


class StaffPasswordResetForm(PasswordResetForm):
    """Staff resets go to staff accounts only; patients reset theirs on the portal."""

    def get_users(self, email):
        return (user for user in super().get_users(email) if user.is_staff)


class StaffPasswordResetView(PasswordResetView):
    form_class = StaffPasswordResetForm
    extra_context = {"site_header": admin.site.site_header}

    def form_valid(self, form):
        if not throttle.allow(
            "staff-reset", throttle.client_ip(self.request), limit=STAFF_RESET_LIMIT[0], window_seconds=STAFF_RESET_LIMIT[1]
        ):
            # Same answer as a sent reset: neither reveals accounts nor floods an inbox.
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


@require_GET
def practice_logo(request: HttpRequest, name: str):
    """Practice logos are public (they appear in emails), so they are served in production too,
    from this one folder only; other uploads under MEDIA_ROOT are never served."""
    path = f"practice-logos/{name}"
    if "/" in name or name.startswith(".") or not default_storage.exists(path):
        raise Http404("No such logo.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not content_type.startswith("image/"):
        raise Http404("No such logo.")
    response = FileResponse(default_storage.open(path, "rb"), content_type=content_type)
    response["Cache-Control"] = "public, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
