"""A patient's account: sign-in (limited per client address and per account, counted before each
attempt is evaluated: patients.staff_auth.limits.PATIENTS), sign-out and password reset (one email per
patient account on the address, each naming its username, sent by a worker)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy

from core import throttle
from core.queue import enqueue_on_commit
from patients.staff_auth import limits, reset
from portal.forms import PatientAuthenticationForm, PatientPasswordResetForm, PatientSetPasswordForm

LOGIN_LIMIT = limits.PATIENTS.address[1:]  # failed sign-ins per client address per 15 minutes
#: Reset requests per client address per hour (then a 429), and per typed address per hour (then
#: silently nothing: the same answer whoever it belongs to).
RESET_ADDRESS_LIMIT = ("portal-reset", 5, 60 * 60)
RESET_EMAIL_LIMIT = ("portal-reset-email", 3, 60 * 60)
SEND_RESET_TASK = "portal.send_password_reset"


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PatientAuthenticationForm
    next_page = reverse_lazy("portal:home")

    def post(self, request, *args, **kwargs):
        gate = limits.check(request, request.POST.get("username") or "", limits.PATIENTS)
        if gate.refusal:
            return render(request, "portal/rate_limited.html", status=429)
        response = super().post(request, *args, **kwargs)
        # The login redirects only when the username and password were right: a family or a
        # clinic's waiting room signing in from one address never counts.
        if response.status_code == 302 and request.user.is_authenticated:
            gate.succeeded()
            limits.remember_browser(request, response, request.user.get_username(), limits.PATIENTS)
        return response


class PortalLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("portal:login")


class PortalPasswordResetView(auth_views.PasswordResetView):
    form_class = PatientPasswordResetForm
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def form_valid(self, form):
        # Known address or not: the same work (count, hand the address to a worker after commit)
        # and the same answer. Sending here answered a known address ~200 ms later than an unknown one.
        scope, limit, window = RESET_EMAIL_LIMIT
        email = form.cleaned_data["email"].strip()
        if throttle.attempt(scope, email.lower(), limit=limit, window_seconds=window).allowed:
            enqueue_on_commit(SEND_RESET_TASK, email, private=True)
        return HttpResponseRedirect(self.get_success_url())

    def post(self, request, *args, **kwargs):
        scope, limit, window = RESET_ADDRESS_LIMIT
        if not throttle.attempt(scope, throttle.client_ip(request), limit=limit, window_seconds=window).allowed:
            return render(request, "portal/rate_limited.html", status=429)
        return super().post(request, *args, **kwargs)


def send_reset_email(email: str) -> int:
    """Email a reset link to each patient account on this address (the worker's part); how many."""
    return reset.email_reset_links(
        PatientPasswordResetForm, email,
        subject_template_name=PortalPasswordResetView.subject_template_name,
        email_template_name=PortalPasswordResetView.email_template_name,
        extra_email_context={"portal_base_url": settings.PORTAL_BASE_URL},
    )


class PortalPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = PatientSetPasswordForm
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        # A new password unlocks the account, and this browser is one its owner uses.
        limits.unlock(self.user.get_username(), limits.PATIENTS)
        limits.remember_browser(self.request, response, self.user.get_username(), limits.PATIENTS)
        return response
