"""The admin's sign-in pages: password (with the limits of `limits`), password reset."""

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse

from . import limits, reset


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
