"""The admin's sign-in pages: password (with the limits of `limits`), password reset, and the
second factor (`two_factor`)."""

import base64

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from patients.staff_auth import limits, reset, two_factor


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
    """The admin's login, with limits on failed attempts counted before each is evaluated."""
    if request.method != "POST":
        return admin.site.login(request)
    gate = limits.check(request, request.POST.get("username") or "")
    if gate.refusal:
        return _refused_login(request, gate.refusal)
    response = admin.site.login(request)
    # The admin's login redirects only when the username and password were right.
    if response.status_code == 302 and request.user.is_authenticated:
        gate.succeeded()
        limits.remember_browser(request, response, request.user.get_username())
    return response


class StaffPasswordResetView(auth_views.PasswordResetView):
    form_class = reset.StaffPasswordResetForm
    extra_context = {"site_header": admin.site.site_header}

    def form_valid(self, form):
        # Known address or not, within the limits or not: the same work and the same answer.
        reset.request_reset(self.request, form.cleaned_data["email"])
        return HttpResponseRedirect(self.get_success_url())


class StaffPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        # A new password unlocks the account, and this browser is one its owner uses.
        limits.unlock(self.user.get_username())
        limits.remember_browser(self.request, response, self.user.get_username())
        return response


# -- two-factor sign-in ---------------------------------------------------------------------------

TOO_MANY_CODES = "Too many wrong codes. You have been signed out; sign in again in 15 minutes."
WRONG_CODE = "That code is not right. Type the 6 digits your authenticator app shows now, or a recovery code."


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code", max_length=32, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
    )


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("admin:index")


def _page(request: HttpRequest, template: str, **context) -> TemplateResponse:
    return TemplateResponse(
        request, f"admin/two_factor/{template}",
        {**admin.site.each_context(request), "title": "Two-factor sign-in", "next": _next_url(request), **context},
        status=400 if any(getattr(v, "errors", None) for v in context.values()) else 200,
    )


def _counted_code(request: HttpRequest):
    """Count this code against the account's limit first; None (and signed out) past it."""
    attempt = two_factor.count_code_attempt(request.user)
    if attempt.allowed:
        return attempt
    logout(request)
    messages.error(request, TOO_MANY_CODES)
    return None


def two_factor_page(request: HttpRequest):
    """/admin/two-factor/: give the second factor, enrol an authenticator, or manage it."""
    user = request.user
    if not two_factor.has_authenticator(user):
        return _enrol(request)
    if not request.user.is_verified():
        return _verify(request)
    return _manage(request)


def _verify(request: HttpRequest):
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        attempt = _counted_code(request)
        if attempt is None:
            return HttpResponseRedirect(reverse("admin:login"))
        device = two_factor.verify(request.user, form.cleaned_data["code"])
        if device is not None:
            attempt.release()
            two_factor.sign_in_verified(request, device)
            if device.name == two_factor.RECOVERY_NAME:
                left = two_factor.recovery_codes_left(request.user)
                messages.warning(request, f"You used a recovery code; {left} left. Make new ones on the two-factor page if you are running out.")
            return HttpResponseRedirect(_next_url(request))
        form.add_error("code", WRONG_CODE)
    return _page(request, "verify.html", form=form)


def _enrol(request: HttpRequest):
    device = two_factor.pending_authenticator(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        attempt = _counted_code(request)
        if attempt is None:
            return HttpResponseRedirect(reverse("admin:login"))
        if two_factor.confirm_enrolment(request, device, form.cleaned_data["code"]):
            attempt.release()
            codes = two_factor.new_recovery_codes(request.user)
            return _page(request, "recovery_codes.html", codes=codes, enrolled=True)
        form.add_error("code", "That code is not right. Check that the app shows this account, and type its 6 digits.")
    return _page(
        request, "enrol.html", form=form, qr_code=_qr_svg(device.config_url), key=_spaced_key(device),
        required=two_factor.required_for(request.user), waived=two_factor.waived(),
    )


def _manage(request: HttpRequest):
    required = two_factor.required_for(request.user)
    if request.method == "POST" and request.POST.get("action") == "new_codes":
        return _page(request, "recovery_codes.html", codes=two_factor.new_recovery_codes(request.user), enrolled=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and request.POST.get("action") == "turn_off" and not required and form.is_valid():
        attempt = _counted_code(request)
        if attempt is None:
            return HttpResponseRedirect(reverse("admin:login"))
        if two_factor.verify(request.user, form.cleaned_data["code"]) is not None:
            attempt.release()
            two_factor.turn_off(request.user)
            request.session[two_factor.NEEDED_SESSION_KEY] = False
            messages.success(request, "Two-factor sign-in is off for your account.")
            return HttpResponseRedirect(reverse("staff_two_factor"))
        form.add_error("code", WRONG_CODE)
    return _page(
        request, "manage.html", form=form, required=required,
        codes_left=two_factor.recovery_codes_left(request.user),
    )


def _qr_svg(url: str) -> str:
    # qrcode draws the enrolment QR code as inline SVG: no image request, nothing for the
    # Content-Security-Policy to allow, and the key never leaves the page.
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 - our own drawing of our own URL


def _spaced_key(device) -> str:
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))
