"""The registration link (`/invite/<token>/`, or `/t/<token>/` from a text): the patient confirms
their last name and date of birth, chooses a username and password, and is signed in.

Opening the link (GET) changes nothing but the timeline, so mail scanners cannot burn it. Unknown,
used, expired and voided links each get a page that says what to do, without telling whether a
patient or an address exists; every wrong answer reads the same.
"""

import logging

from django.contrib import messages
from django.contrib.auth import login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from core import languages, throttle
from invitations import services
from invitations.models import MAX_FAILED_ATTEMPTS, Channel, EventKind, Invitation
from patients.models import Patient
from portal.forms import RegistrationForm
from portal.pages import family
from portal.guards import no_referrer
from portal.language import follow_invitation

logger = logging.getLogger(__name__)

REGISTER_LIMIT = (20, 15 * 60)  # POSTs per client address per 15 minutes
OPEN_LINK_LIMIT = (60, 15 * 60)  # GETs of registration links per client address per 15 minutes


LINK_PAGES = {
    "unknown": ("portal/link_unknown.html", 404),
    "used": ("portal/link_used.html", 410),
    "expired": ("portal/link_expired.html", 410),
    "voided": ("portal/link_voided.html", 410),
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
        return render(request, "portal/rate_limited.html", status=429)

    invitation = Invitation.find_by_token(token)
    if invitation is None:
        return _link_page(request, "unknown")
    follow_invitation(request, invitation)  # the link opens in the invitation's language
    if invitation.access_id is not None:  # an invitation to a parent, guardian or caregiver
        return family.register_representative(request, invitation, now=now, link_page=_link_page)
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
        form.identity_not_confirmed()
        invitation.refresh_from_db(fields=["failed_attempts"])  # counted by the attempt, under its lock
        return _registration_page(request, invitation, form)
    if attempt.outcome == "username_taken":
        form.add_error("username", gettext("That username is taken; choose another."))
        return _registration_page(request, invitation, form)
    if attempt.outcome != "registered":
        return _link_page(request, attempt.outcome, invitation)
    # The account keeps the language the patient registered in (the invitation's, or the one they switched to).
    language = languages.supported(translation.get_language())
    if language and language != invitation.patient.preferred_language:
        Patient.objects.filter(pk=invitation.patient_id).update(preferred_language=language)
    login(request, attempt.user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, gettext("Your portal account is ready. Welcome!"))
    return redirect("portal:home")


def _registration_page(request, invitation, form) -> HttpResponse:
    return render(
        request,
        "portal/register.html",
        # Before the answer that would void the link, the page says so (it never says which detail was wrong).
        {"form": form, "practice": invitation.practice, "last_try": invitation.failed_attempts >= MAX_FAILED_ATTEMPTS - 1},
        status=200 if not form.errors else 400,
    )
