"""Public pages: the registration link, the patient portal and "Request portal access".

None of these pages reveals whether a patient or an address exists: unknown links, wrong
answers and access requests all get answers that read the same whoever asks.
"""

import functools
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from core import throttle
from patients.models import EmailOptOut, OptOutReason, Patient, Practice

from . import access_requests, services
from .forms import (
    IDENTITY_MISMATCH,
    AccessRequestForm,
    PatientAuthenticationForm,
    PatientPasswordResetForm,
    RegistrationForm,
)
from .models import Channel, EventKind, Invitation

logger = logging.getLogger(__name__)

REGISTER_LIMIT = (20, 15 * 60)  # POSTs per client address per 15 minutes
OPEN_LINK_LIMIT = (60, 15 * 60)  # GETs of registration links per client address per 15 minutes
ACCESS_REQUEST_LIMIT = (5, 60 * 60)  # per client address per hour
ACCESS_REQUEST_EMAIL_LIMIT = (3, 24 * 60 * 60)  # per practice and address per day
LOGIN_LIMIT = (20, 15 * 60)


class _NullOriginCsrfMiddleware(CsrfViewMiddleware):
    """CSRF protection for pages served with `Referrer-Policy: no-referrer`.

    Under that policy browsers submit the page's forms with `Origin: null`, which Django's
    origin check rejects. The CSRF token (cookie and form field must match) is still required.
    """

    def _origin_verified(self, request):
        return request.META.get("HTTP_ORIGIN") == "null" or super()._origin_verified(request)


_csrf_protect_allowing_null_origin = decorator_from_middleware(_NullOriginCsrfMiddleware)


def no_referrer(view):
    """The token is in the URL: never leak it in a Referer header, never cache the page."""
    protected = _csrf_protect_allowing_null_origin(view)

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = protected(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response

    # The global middleware would refuse `Origin: null`; the decorator above checks instead.
    return csrf_exempt(never_cache(wrapper))


# -- registration ---------------------------------------------------------------------------


LINK_PAGES = {
    "unknown": ("invitations/link_unknown.html", 404),
    "used": ("invitations/link_used.html", 410),
    "expired": ("invitations/link_expired.html", 410),
    "voided": ("invitations/link_voided.html", 410),
}


def _link_page(request: HttpRequest, state: str, invitation=None) -> HttpResponse:
    template, status = LINK_PAGES[state]
    practice = invitation.practice if invitation is not None else None
    return render(request, template, {"practice": practice}, status=status)


@no_referrer
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    if request.method == "POST":
        allowed = throttle.allow(
            "register", throttle.client_ip(request), limit=REGISTER_LIMIT[0], window_seconds=REGISTER_LIMIT[1]
        )
    else:  # guessing links, or filling the timeline with "opened" entries
        allowed = throttle.allow(
            "register-open", throttle.client_ip(request), limit=OPEN_LINK_LIMIT[0], window_seconds=OPEN_LINK_LIMIT[1]
        )
    if not allowed:
        return render(request, "invitations/rate_limited.html", status=429)

    invitation = Invitation.find_by_token(token)
    if invitation is None:
        return _link_page(request, "unknown")
    state = services.link_state(invitation, now)
    if state != "usable":
        return _link_page(request, state, invitation)

    if request.method == "GET":
        # The only effect of opening the link: mail scanners that follow it burn nothing.
        invitation.record(EventKind.LINK_OPENED, now=now, detail="From the text" if invitation.found_via == Channel.TEXT else "")
        form = RegistrationForm(invitation=invitation)
        return _registration_page(request, invitation, form)

    form = RegistrationForm(request.POST, invitation=invitation)
    if not form.is_valid():
        return _registration_page(request, invitation, form)
    data = form.cleaned_data
    attempt = services.attempt_registration(
        invitation.pk, last_name=data["last_name"], date_of_birth=data["date_of_birth"],
        username=data["username"], password=data["password1"], now=now, via=invitation.found_via,
    )
    if attempt.outcome == "mismatch":
        form.add_error(None, IDENTITY_MISMATCH)
        return _registration_page(request, invitation, form)
    if attempt.outcome == "username_taken":
        form.add_error("username", "That username is taken; choose another.")
        return _registration_page(request, invitation, form)
    if attempt.outcome != "registered":
        return _link_page(request, attempt.outcome, invitation)
    login(request, attempt.user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your portal account is ready. Welcome!")
    return redirect("portal:home")


def _registration_page(request, invitation, form) -> HttpResponse:
    return render(
        request,
        "invitations/register.html",
        {"form": form, "practice": invitation.practice},
        status=200 if not form.errors else 400,
    )


# -- "Request portal access" ---------------------------------------------------------------


@no_referrer
@require_http_methods(["GET", "POST"])
def request_access(request: HttpRequest, practice_id: int) -> HttpResponse:
    practice = get_object_or_404(Practice, pk=practice_id, self_signup_enabled=True)
    if request.method == "GET":
        return render(request, "invitations/request_access.html", {"practice": practice, "form": AccessRequestForm()})
    if not throttle.allow(
        "access-request", throttle.client_ip(request),
        limit=ACCESS_REQUEST_LIMIT[0], window_seconds=ACCESS_REQUEST_LIMIT[1],
    ):
        return render(request, "invitations/rate_limited.html", {"practice": practice}, status=429)
    form = AccessRequestForm(request.POST)
    if not form.is_valid():
        return render(request, "invitations/request_access.html", {"practice": practice, "form": form}, status=400)
    data = form.cleaned_data
    if throttle.allow(
        "access-request-email", f"{practice.pk}:{data['email']}",
        limit=ACCESS_REQUEST_EMAIL_LIMIT[0], window_seconds=ACCESS_REQUEST_EMAIL_LIMIT[1],
    ):
        outcome = access_requests.request_access(practice=practice, now=timezone.now(), **data)
        logger.info("access request for practice %s: %s", practice.pk, outcome)
    # Whatever happened, the same answer: the page never tells who is a patient.
    return render(request, "invitations/request_access_done.html", {"practice": practice})


# -- the portal -------------------------------------------------------------------------------


def patient_required(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('portal:login')}?next={request.path}")
        patient = Patient.objects.select_related("practice").filter(portal_user=request.user).first()
        if patient is None:
            return render(request, "portal/not_a_patient.html", status=403)
        return view(request, patient, *args, **kwargs)

    return never_cache(wrapper)


@patient_required
def home(request: HttpRequest, patient: Patient) -> HttpResponse:
    return render(request, "portal/home.html", {"patient": patient, "practice": patient.practice})


@patient_required
@require_http_methods(["GET", "POST"])
def email_preferences(request: HttpRequest, patient: Patient) -> HttpResponse:
    practice = patient.practice
    entry = EmailOptOut.objects.matching(practice.pk, patient.email).first() if patient.email else None
    if request.method == "POST" and patient.email:
        action = request.POST.get("action")
        if action == "stop" and entry is None:
            services.opt_out(practice=practice, email=patient.email, now=timezone.now())
            messages.success(request, f"Done: {practice.name} will not email {patient.email} any more.")
        elif action == "resume" and entry is not None and entry.reason == OptOutReason.PATIENT_REQUEST:
            entry.delete()
            messages.success(request, f"{practice.name} may email you again.")
        return redirect("portal:email_preferences")
    return render(
        request,
        "portal/email_preferences.html",
        {
            "patient": patient,
            "practice": practice,
            "opted_out": entry is not None,
            "can_resume": entry is not None and entry.reason == OptOutReason.PATIENT_REQUEST,
        },
    )


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    authentication_form = PatientAuthenticationForm
    next_page = reverse_lazy("portal:home")

    def post(self, request, *args, **kwargs):
        address = throttle.client_ip(request)
        # Only failures count: a family or a clinic's waiting room signing in from one address is fine.
        if throttle.exceeded("portal-login", address, limit=LOGIN_LIMIT[0], window_seconds=LOGIN_LIMIT[1]):
            return render(request, "invitations/rate_limited.html", status=429)
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
            return render(request, "invitations/rate_limited.html", status=429)
        return super().post(request, *args, **kwargs)


class PortalPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")
