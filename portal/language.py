"""The patient pages' language: which one a page is in, and the switch on every page.

Only the patient's pages follow a language (the staff admin stays English): the middleware turns a
language on for the views of this app alone and off again after the response. The language is, in
order: the signed-in patient's own (saved on the account when they switch), the one they chose on
this browser (a cookie), the invitation's when the page is a registration link
(`follow_invitation`: the link opens in the language the invitation was sent in), the browser's,
and the default.
"""

from typing import Optional

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from core import languages
from patients.models import Patient
from portal.guards import no_referrer


def _account_language(request: HttpRequest) -> Optional[str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_staff:
        return None
    return Patient.objects.filter(portal_user=user).values_list("preferred_language", flat=True).first()


def _chosen_language(request: HttpRequest) -> Optional[str]:
    return languages.supported(request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME))


def language_for(request: HttpRequest) -> str:
    return (
        languages.supported(_account_language(request))
        or _chosen_language(request)
        or translation.get_language_from_request(request)
    )


def follow_invitation(request: HttpRequest, invitation) -> None:
    """A registration link opens in the invitation's language unless the patient chose another."""
    if _account_language(request) or _chosen_language(request):
        return
    language = languages.supported(invitation.language)
    if language:
        translation.activate(language)
        request.LANGUAGE_CODE = language


class PatientLanguageMiddleware:
    """Turns the patient's language on for the patient pages (the views of the "portal"
    namespace) and off again afterwards, so nothing else (the admin, the webhooks) follows it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self.get_response(request)
        finally:
            translation.deactivate()
        if getattr(request, "_patient_page", False):
            response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
            patch_vary_headers(response, ("Cookie", "Accept-Language"))
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        match = request.resolver_match
        if match is None or match.namespace != "portal":
            return None
        language = language_for(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        request._patient_page = True
        return None


@no_referrer  # the switch sits on pages served without a Referer (registration links)
@require_POST
def switch_language(request: HttpRequest) -> HttpResponse:
    """The language switch of every patient page: remember the choice (a cookie, and the account
    of a signed-in patient) and go back to the page."""
    language = languages.supported(request.POST.get("language"))
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = reverse("portal:login")
    response = HttpResponseRedirect(target)
    if language is None:
        return response
    if request.user.is_authenticated and not request.user.is_staff:
        Patient.objects.filter(portal_user=request.user).update(preferred_language=language)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME, language, max_age=settings.LANGUAGE_COOKIE_AGE,
        secure=settings.LANGUAGE_COOKIE_SECURE, httponly=True, samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response
