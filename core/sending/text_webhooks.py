"""Twilio's webhooks (delivery statuses, patients' replies), verified before the app reads them.

The app's views are wrapped in `twilio_webhook`; a request reaches the view only when

* texts go through Twilio (``SMS_PROVIDER=twilio``): otherwise 404, so nobody can post fake
  statuses to a portal that sends no texts;
* it is a POST: otherwise 405;
* its ``X-Twilio-Signature`` is Twilio's signature, with our auth token, of the public URL Twilio
  called and the posted form fields (`twilio.request_validator.RequestValidator`, which compares
  in constant time): otherwise 403 with a short reason, and nothing is read or stored. The token
  missing is 403 too.

The public URL is ``settings.PORTAL_BASE_URL`` plus the request's path and query string, not
``request.build_absolute_uri()``: behind a TLS-terminating proxy Django sees http and an inner
host name, while Twilio signed the https address it was given. So the URLs configured at Twilio
(the status callback each text carries, the messaging service's or number's inbound URL) must
start with ``PORTAL_BASE_URL``, as every link the portal writes does.

The view is also CSRF-exempt (Twilio holds no CSRF token); it should be idempotent (Twilio retries
a webhook that failed: key on ``MessageSid``) and answer quickly. For the replies:
`reply_keyword(request.POST)` reads Twilio's ``OptOutType`` (STOP / START / HELP, sent when the
messaging service handles opt-outs) or, without it, matches Twilio's default keywords itself.

    @twilio_webhook
    def text_status(request):  # StatusCallback: MessageSid, MessageStatus, ErrorCode
        ...
        return HttpResponse(status=204)
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Mapping, Optional

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio's default keywords (a reply that is exactly one of them, in any case), by what they do.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def public_url(request: HttpRequest) -> str:
    """The URL Twilio called, as it signed it."""
    return settings.PORTAL_BASE_URL + request.get_full_path()


def refusal(request: HttpRequest) -> Optional[HttpResponse]:
    """The answer to a request that may not reach the view, or None when it is Twilio's."""
    if getattr(settings, "SMS_PROVIDER", "") != "twilio":
        return _refuse(404, "not_found", "Texts are not sent through Twilio here.")
    if request.method != "POST":
        response = _refuse(405, "method_not_allowed", "POST only.")
        response["Allow"] = "POST"
        return response
    token = getattr(settings, "TWILIO_AUTH_TOKEN", "")
    if not token:
        return _refuse(403, "not_configured", "Set TWILIO_AUTH_TOKEN to receive Twilio's webhooks.")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return _refuse(403, "unsigned", f"The {SIGNATURE_HEADER} header is missing.")
    url = public_url(request)
    # A JSON body is signed through its hash in the URL (?bodySHA256=...); form fields themselves.
    params = request.body.decode("utf-8", "replace") if "bodySHA256" in request.GET else request.POST
    if not RequestValidator(token).validate(url, params, signature):
        logger.warning("refused a Twilio webhook with a bad signature for %s", request.path)
        return _refuse(403, "bad_signature", f"The {SIGNATURE_HEADER} does not match this request.")
    return None


def twilio_webhook(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let only Twilio's signed POSTs reach `view` (module docstring); CSRF-exempt."""

    @functools.wraps(view)
    def verified(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = refusal(request)
        if refused is not None:
            return refused
        return view(request, *args, **kwargs)

    return csrf_exempt(verified)


def reply_keyword(fields: Mapping[str, str]) -> Optional[str]:
    """"stop", "start" or "help" for a patient's reply that is one of those keywords, else None.

    Twilio's ``OptOutType`` field decides where present (the messaging service's Advanced Opt-Out
    knows its own keywords); otherwise the whole reply, trimmed and without trailing punctuation,
    is matched against Twilio's defaults.
    """
    declared = (fields.get("OptOutType") or "").strip().upper()
    if declared in ("STOP", "START", "HELP"):
        return declared.lower()
    word = (fields.get("Body") or "").strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_WORDS:
        return "stop"
    if word in OPT_IN_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def _refuse(status: int, error: str, detail: str) -> HttpResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)
