"""The email provider's tracking webhook, for the configured provider only, behind its secret.

anymail's URLs answer for every provider it knows, and without ``ANYMAIL_WEBHOOK_SECRET`` they accept
anyone (with a warning): with no provider configured, an unauthenticated Postmark "bounce" naming a
known invitation would fail it and mark the patient's address bounced. Here one URL pattern serves
``/anymail/<provider>/tracking/``:

* a provider other than ``EMAIL_PROVIDER`` (or any, when none is configured) is 404;
* no ``ANYMAIL_WEBHOOK_SECRET`` configured is 403, whoever asks; a request without the right
  basic-auth credentials is 401 (compared in constant time) - before anymail parses anything;
* only then anymail's own view for that provider runs (it checks the provider's signature where it
  has one). A provider setting missing for it (e.g. Mailgun's webhook signing key) is a 503 with
  the fix, logged once per request, never a 500.
"""

import base64
import binascii
import logging

from anymail import urls as anymail_urls
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)


def _secrets() -> list[str]:
    configured = (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET") or []
    return [configured] if isinstance(configured, str) else [s for s in configured if s]


def _credentials(request: HttpRequest) -> str:
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "basic" or not value:
        return ""
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _anymail_view(provider: str):
    for pattern in anymail_urls.urlpatterns:
        if pattern.name == f"{provider}_tracking_webhook":
            return pattern.callback
    return None


@csrf_exempt
def tracking(request: HttpRequest, provider: str) -> HttpResponse:
    configured = getattr(settings, "EMAIL_PROVIDER", "") or ""
    view = _anymail_view(provider) if provider == configured else None
    if view is None:
        return JsonResponse({"error": "not_found", "detail": "No tracking webhook for this provider here."}, status=404)
    secrets = _secrets()
    if not secrets:
        return JsonResponse(
            {"error": "not_configured", "detail": "Set ANYMAIL_WEBHOOK_SECRET to receive delivery reports."}, status=403
        )
    given = _credentials(request)
    if not any(constant_time_compare(given, secret) for secret in secrets):
        response = JsonResponse({"error": "unauthorized", "detail": "Basic-auth credentials are required."}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="delivery reports"'
        return response
    try:
        return view(request)
    except ImproperlyConfigured as exc:
        logger.error("The %s tracking webhook is not configured: %s", provider, exc)
        return JsonResponse(
            {"error": "not_configured", "detail": f"The {provider} tracking webhook is missing a setting: {exc}"}, status=503
        )
