"""A patient's account: sign-in (limited per client address), sign-out and password reset (one
email per patient account on the address, each naming its username)."""

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.shortcuts import render
from django.urls import reverse_lazy

from core import throttle
from portal.forms import PatientAuthenticationForm, PatientPasswordResetForm, PatientSetPasswordForm

LOGIN_LIMIT = (20, 15 * 60)


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PatientAuthenticationForm
    next_page = reverse_lazy("portal:home")

    def post(self, request, *args, **kwargs):
        address = throttle.client_ip(request)
        # Only failures count: a family or a clinic's waiting room signing in from one address is fine.
        if throttle.exceeded("portal-login", address, limit=LOGIN_LIMIT[0], window_seconds=LOGIN_LIMIT[1]):
            return render(request, "portal/rate_limited.html", status=429)
        response = super().post(request, *args, **kwargs)
        if not request.user.is_authenticated:
            throttle.hit("portal-login", address, window_seconds=LOGIN_LIMIT[1])
        return response


class PortalLogoutView(auth_views.LogoutView):
    next_page = reverse_lazy("portal:login")


class PortalPasswordResetView(auth_views.PasswordResetView):
    form_class = PatientPasswordResetForm
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def get_extra_email_context(self):
        return {"portal_base_url": settings.PORTAL_BASE_URL}

    def form_valid(self, form):
        self.extra_email_context = self.get_extra_email_context()
        return super().form_valid(form)

    def post(self, request, *args, **kwargs):
        if not throttle.allow(
            "portal-reset", throttle.client_ip(request), limit=5, window_seconds=60 * 60
        ):
            return render(request, "portal/rate_limited.html", status=429)
        return super().post(request, *args, **kwargs)


class PortalPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = PatientSetPasswordForm
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")
