"""What a provider's error means for the message, written once for every provider.

Four kinds, each handled differently by every sender (bulk runs, single invitations, staff alerts):

* ``REFUSED``: this message can never go (an invalid or suppressed address, a rejected message).
  It is failed with the reason; staff can correct the address and resend.
* ``THROTTLED``: the account is over its rate (HTTP 429, SES ``Throttling``). Nothing is wrong with
  the message: every sender slows down (`ratelimit.RateLimiter.slow_down`, honouring Retry-After)
  and it is tried again in place.
* ``TEMPORARY``: the provider or the network failed (5xx, timeouts, connection errors). Tried again
  after a short wait, a few times, then handed back to wait longer.
* ``SERVICE``: the provider refuses our account or our configuration (bad API key, unverified
  sender domain, suspended account). Every other message would fail the same way, so sending
  stops at once and waits for ops; no patient's invitation is failed for it.

`classify` reads anymail's exceptions (the HTTP status and the provider's own error code where it
has one), botocore's error codes for Amazon SES, smtplib's for the SMTP backend, and the `twilio`
library's for text messages (`_twilio_error`). Anything it does not recognise is TEMPORARY:
retried, then given up with its description, never lost. A message the caller's data cannot build
(`Unbuildable`) is REFUSED. A channel that sends at most once (texts: the transport's
``at_most_once``) asks ``classify(exc, at_most_once=True)``: a call that may have reached the
provider without an answer is then REFUSED with ``UNKNOWN_OUTCOME``, never tried again.

A refused text carries a machine-readable ``code`` the app acts on (`INVALID_NUMBER`,
`NOT_MOBILE`, `OPTED_OUT`, `CANNOT_ROUTE`, or `REFUSED_TEXT` for any other refusal), and every
Twilio error's ``detail`` is written here from the error code, never Twilio's own message (which
echoes the number). `twilio_delivery_error` reads the ``ErrorCode`` of a status callback
(undelivered, failed) the same way.
"""

from __future__ import annotations

import email.utils
import enum
import json
import smtplib
import socket
import time
from dataclasses import dataclass
from typing import Any, Optional

import requests
import urllib3
from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
    AnymailSerializationError,
    AnymailUnsupportedFeature,
)
from django.core.exceptions import ImproperlyConfigured
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException


class ErrorKind(enum.Enum):
    REFUSED = "refused"
    THROTTLED = "throttled"
    TEMPORARY = "temporary"
    SERVICE = "service"


@dataclass(frozen=True)
class SendError:
    kind: ErrorKind
    #: Safe to show staff and store: the error's type, HTTP status and first line, never the
    #: provider's raw response (which can echo the message).
    detail: str
    #: Seconds the provider asked us to wait (Retry-After), if it said.
    retry_after: Optional[float] = None
    #: Why a text was refused, for the app to act on (`OPTED_OUT`, `NOT_MOBILE`, ...); "" otherwise.
    code: str = ""

    @property
    def is_refused(self) -> bool:
        return self.kind is ErrorKind.REFUSED


#: A provider's "wait this long" is believed up to an hour.
MAX_RETRY_AFTER = 3600.0
#: Amazon SES (SESv2 and the v1 API) error codes, by what they mean.
SES_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException"}
SES_REFUSED = {"MessageRejected", "BadRequestException", "InvalidParameterValue"}
SES_SERVICE = {
    "AccountSuspendedException", "SendingPausedException", "MailFromDomainNotVerifiedException",
    "MailFromDomainNotVerified", "NotFoundException", "AccessDeniedException", "AccessDenied",
    "UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
    "ExpiredTokenException", "ConfigurationSetDoesNotExist", "ConfigurationSetDoesNotExistException",
    "AccountSendingPausedException", "ConfigurationSetSendingPausedException",
}
#: Postmark's ErrorCode values that are about our account or configuration, not the recipient
#: (10 bad server token, 400/401 sender signature missing or unconfirmed, 405 out of credits,
#: 412 account pending approval, 413 sending not allowed, 300 for a non-recipient field).
POSTMARK_SERVICE_CODES = {10, 300, 400, 401, 405, 412, 413}
POSTMARK_THROTTLED_CODES = {429}


def describe(exc: BaseException) -> str:
    """The exception's type, HTTP status and own first line, at most 300 characters.

    Not ``str(exc)``: anymail appends the provider's raw response, which can echo the message.
    """
    message = str(exc.args[0]) if exc.args else ""
    if not message.strip() and exc.__cause__ is not None:
        cause = exc.__cause__
        message = str(cause.args[0]) if getattr(cause, "args", None) else type(cause).__name__
    first_line = (message.strip().splitlines() or [""])[0]
    status = _http_status(exc)
    code = _provider_code(exc)
    prefix = type(exc).__name__ + (f" (HTTP {status})" if status else "") + (f" [{code}]" if code else "")
    return (f"{prefix}: {first_line}" if first_line else prefix)[:300]


class Unbuildable(ValueError):
    """The message could not be made from what the caller gave (refused: building it again fails
    the same way)."""


def classify(exc: BaseException, *, at_most_once: bool = False) -> SendError:
    """What `exc`, raised by a call to the provider, means for the message.

    With `at_most_once` (the text channel's promise) a call that may have reached Twilio without
    our hearing back (the answer timed out, the connection broke after the request went: the
    `twilio` client raises `requests`' own errors) is refused with ``UNKNOWN_OUTCOME`` instead of
    tried again: sending it again could text the patient twice. A connection that never opened is
    temporary as usual. Without it (emails) such a call is temporary and tried again: at least once."""
    if at_most_once and _maybe_delivered(exc):
        return SendError(
            ErrorKind.REFUSED, "Twilio did not answer in time, so the text may or may not have been sent "
            f"({type(exc).__name__}). Resend to send a new link.", code=UNKNOWN_OUTCOME,
        )
    if isinstance(exc, Unbuildable):
        return SendError(ErrorKind.REFUSED, str(exc)[:300])
    if isinstance(exc, TwilioException):
        return _twilio_error(exc)
    kind, retry_after = _kind(exc)
    return SendError(kind=kind, detail=describe(exc), retry_after=retry_after)


def _maybe_delivered(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False  # the connection never opened
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        never_connected = isinstance(reason, urllib3.exceptions.MaxRetryError) and isinstance(
            reason.reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
        return not never_connected
    return False


def _kind(exc: BaseException) -> tuple[ErrorKind, Optional[float]]:
    if isinstance(exc, AnymailInvalidAddress):
        # The recipient's address is this message's problem; a bad From or Reply-To (the
        # practice's contact address) would refuse every message the same way.
        return (ErrorKind.REFUSED if "in `to`" in str(exc.args[0] if exc.args else "") else ErrorKind.SERVICE), None
    if isinstance(exc, AnymailRecipientsRefused):
        return ErrorKind.REFUSED, None
    if isinstance(exc, (AnymailUnsupportedFeature, AnymailSerializationError, AnymailConfigurationError, ImproperlyConfigured)):
        return ErrorKind.SERVICE, None
    if isinstance(exc, AnymailAPIError) and isinstance(getattr(exc, "response", None), dict):
        return _ses_kind(exc.response, sender=_sender(exc))  # botocore's parsed error, passed on by anymail
    if isinstance(exc, AnymailError) and exc.__cause__ is not None and _is_boto(exc.__cause__):
        return _boto_kind(exc.__cause__)
    status = _http_status(exc)
    if status is not None:
        return _http_kind(exc, status)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return ErrorKind.REFUSED, None
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused)):
        return ErrorKind.SERVICE, None
    if isinstance(exc, smtplib.SMTPResponseException):
        return (ErrorKind.TEMPORARY if exc.smtp_code < 500 else ErrorKind.REFUSED), None
    if isinstance(exc, (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError, OSError)):
        return ErrorKind.TEMPORARY, None
    return ErrorKind.TEMPORARY, None


def _http_kind(exc: BaseException, status: int) -> tuple[ErrorKind, Optional[float]]:
    retry_after = _retry_after(getattr(exc, "response", None))
    if status == 429:
        return ErrorKind.THROTTLED, retry_after
    if status == 408 or status >= 500:
        return ErrorKind.TEMPORARY, retry_after
    if status in (401, 402, 403, 404):
        # Bad key (401/403), unpaid account (Mailgun 402), unknown sending domain or API URL (404).
        return ErrorKind.SERVICE, None
    if status == 422:  # Postmark answers 422 with its own ErrorCode
        code = _provider_code(exc)
        if code in POSTMARK_THROTTLED_CODES:
            return ErrorKind.THROTTLED, retry_after
        if code in POSTMARK_SERVICE_CODES:
            return ErrorKind.SERVICE, None
    # Any other 4xx is about this message (Mailgun and SendGrid answer 400 for a bad address).
    return ErrorKind.REFUSED, None


def _sender(exc: BaseException) -> str:
    message = getattr(exc, "email_message", None)
    return email.utils.parseaddr(getattr(message, "from_email", "") or "")[1].lower()


def _ses_kind(response: dict, *, sender: str = "") -> tuple[ErrorKind, Optional[float]]:
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    metadata = response.get("ResponseMetadata") or {}
    status = metadata.get("HTTPStatusCode")
    headers = {str(k).lower(): v for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    if code in SES_THROTTLED or status == 429:
        if "daily" in message.lower() or "quota" in message.lower():
            # "Daily message quota exceeded": no wait of seconds helps; ops must raise the quota.
            return ErrorKind.SERVICE, None
        return ErrorKind.THROTTLED, _parse_retry_after(headers.get("retry-after"))
    if code in SES_SERVICE or status in (401, 403):
        return ErrorKind.SERVICE, None
    if code == "MessageRejected" and "not verified" in message.lower() and sender and sender in message.lower():
        # "Email address is not verified ... : portal@practice.example": our sending identity,
        # not the patient's address; every message would be refused.
        return ErrorKind.SERVICE, None
    if code in SES_REFUSED:
        return ErrorKind.REFUSED, None
    if status is not None and (status >= 500 or status == 408):
        return ErrorKind.TEMPORARY, None
    if status is not None and 400 <= status < 500:
        return ErrorKind.REFUSED, None
    return ErrorKind.TEMPORARY, None


def _is_boto(exc: BaseException) -> bool:
    return type(exc).__module__.startswith(("botocore", "boto3"))


def _boto_kind(exc: BaseException) -> tuple[ErrorKind, Optional[float]]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return _ses_kind(response)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError", "ProfileNotFound"):
        return ErrorKind.SERVICE, None
    return ErrorKind.TEMPORARY, None  # EndpointConnectionError, ReadTimeoutError, ...


def _http_status(exc: BaseException) -> Optional[int]:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _provider_code(exc: BaseException) -> Any:
    """The provider's own error code where its answer has one (Postmark ErrorCode, SES Code)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    if response is None or not hasattr(response, "json"):
        return None
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError, AttributeError):
        return None
    return body.get("ErrorCode") if isinstance(body, dict) else None


def _retry_after(response: Any) -> Optional[float]:
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = _parse_retry_after(headers.get("Retry-After"))
    if value is None and headers.get("X-RateLimit-Reset"):  # SendGrid: when the window resets
        try:
            value = min(max(0.0, float(headers["X-RateLimit-Reset"]) - time.time()), MAX_RETRY_AFTER)
        except ValueError:
            value = None
    return value


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After is seconds or an HTTP date; anything else, or absurd values, is ignored."""
    if not value:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            seconds = email.utils.parsedate_to_datetime(str(value)).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# == Twilio (text messages) =======================================================================

#: Why a text was refused, for the app to act on (SendError.code).
INVALID_NUMBER = "invalid_number"  # not a phone number at all: staff correct it
NOT_MOBILE = "not_mobile"  # a landline or another number that cannot take texts
OPTED_OUT = "opted_out"  # the patient replied STOP: no texts until they reply START
CANNOT_ROUTE = "cannot_route"  # Twilio cannot reach the number, or its country is not enabled
REFUSED_TEXT = "refused"  # any other refusal of this one text
UNKNOWN_OUTCOME = "unknown_outcome"  # the call may have reached Twilio, but no answer came back

#: Twilio's error codes for the recipient: (our code, what staff read).
TWILIO_REFUSED = {
    21211: (INVALID_NUMBER, "The phone number is not a valid number."),
    21217: (INVALID_NUMBER, "The phone number is not a valid number."),
    21614: (NOT_MOBILE, "The phone number is not a mobile number and cannot receive texts."),
    21610: (OPTED_OUT, "The patient replied STOP to our texts; none can be sent until they reply START."),
    21612: (CANNOT_ROUTE, "Twilio cannot deliver a text to this number."),
    21408: (CANNOT_ROUTE, "Texts to this number's country are not enabled on the Twilio account (Messaging > Settings > Geo permissions)."),
}
#: Twilio's error codes for our account or configuration: every text would fail the same way.
TWILIO_SERVICE = {
    20003: "Twilio refused our credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.",
    20005: "The Twilio account is suspended or closed.",
    20404: "Twilio does not know our account or messaging service: check TWILIO_ACCOUNT_SID and TWILIO_MESSAGING_SERVICE_SID.",
    21212: "Twilio refused our sender number: check TWILIO_FROM_NUMBER.",
    21601: "Twilio refused our sender number: TWILIO_FROM_NUMBER must be an SMS-capable number of this account.",
    21606: "Twilio refused our sender number: TWILIO_FROM_NUMBER must be an SMS-capable number of this account.",
    21607: "The Twilio account is a trial account: it may only send from its trial number.",
    21608: "The Twilio account is a trial account: it may only text verified numbers. Upgrade the account.",
    21659: "Twilio refused our sender number: TWILIO_FROM_NUMBER is not a Twilio number.",
    21661: "Twilio refused our sender number: TWILIO_FROM_NUMBER cannot send texts.",
    21701: "Twilio does not know our messaging service: check TWILIO_MESSAGING_SERVICE_SID.",
    21704: "Our Twilio messaging service has no phone numbers: add one in the Twilio console.",
    21705: "Twilio refused our messaging service: check TWILIO_MESSAGING_SERVICE_SID.",
}
#: Twilio's "too many requests" codes (the API's 429; 14107 is its per-account send rate).
TWILIO_THROTTLED = {20429, 14107}
#: A status callback's ErrorCode for a text Twilio took but could not deliver: (kind, our code,
#: what staff read). Temporary ones may work another day; service ones are our registration.
TWILIO_DELIVERY = {
    21610: (ErrorKind.REFUSED, OPTED_OUT, "The patient replied STOP to our texts; none can be sent until they reply START."),
    30003: (ErrorKind.TEMPORARY, CANNOT_ROUTE, "The phone was unreachable (switched off or out of coverage)."),
    30004: (ErrorKind.REFUSED, REFUSED_TEXT, "The text was blocked by the recipient or their carrier."),
    30005: (ErrorKind.REFUSED, INVALID_NUMBER, "The carrier does not know this number."),
    30006: (ErrorKind.REFUSED, NOT_MOBILE, "The number is a landline or its carrier cannot take texts."),
    30007: (ErrorKind.REFUSED, REFUSED_TEXT, "The carrier filtered the text as unwanted."),
    30008: (ErrorKind.TEMPORARY, REFUSED_TEXT, "The carrier could not deliver the text (unknown error)."),
    30001: (ErrorKind.SERVICE, "", "Twilio's queue for our sender overflowed: lower PORTAL_SMS_RATE_LIMIT."),
    30002: (ErrorKind.SERVICE, "", "The Twilio account is suspended."),
    30032: (ErrorKind.SERVICE, "", "Our toll-free sender number is not verified with Twilio."),
    30034: (ErrorKind.SERVICE, "", "Our sender number is not registered for US texting (A2P 10DLC) with Twilio."),
}


def _twilio_error(exc: TwilioException) -> SendError:
    """A `twilio` library error, by Twilio's error code and HTTP status. The detail is ours: Twilio's
    message names the recipient's number."""
    if not isinstance(exc, (TwilioRestException, TwilioServiceException)):
        # Raised before any request (e.g. "Credentials are required").
        return SendError(ErrorKind.SERVICE, f"The Twilio client is not configured ({describe(exc)}).")
    status = exc.status if isinstance(exc.status, int) else None
    code = exc.code if isinstance(exc.code, int) else None
    reference = f"Twilio error {code}, HTTP {status}" if code not in (None, status) else f"Twilio HTTP {status}"
    if code in TWILIO_REFUSED:
        our_code, text = TWILIO_REFUSED[code]
        return SendError(ErrorKind.REFUSED, _noted(text, reference), code=our_code)
    if code in TWILIO_THROTTLED or status == 429:
        return SendError(ErrorKind.THROTTLED, f"Twilio asked us to slow down ({reference}).")
    if code in TWILIO_SERVICE:
        return SendError(ErrorKind.SERVICE, _noted(TWILIO_SERVICE[code], reference))
    if status is None or status == 408 or status >= 500:
        return SendError(ErrorKind.TEMPORARY, f"Twilio failed to answer ({reference}).")
    if status in (401, 402, 403, 404):
        return SendError(ErrorKind.SERVICE, f"Twilio refused our account or configuration ({reference}).")
    return SendError(
        ErrorKind.REFUSED, f"Twilio refused the text ({reference}; see https://www.twilio.com/docs/errors/{code or status}).",
        code=REFUSED_TEXT,
    )


def twilio_delivery_error(error_code: Any) -> SendError:
    """What the ``ErrorCode`` of a Twilio status callback (an undelivered or failed text) means."""
    try:
        code = int(error_code)
    except (TypeError, ValueError):
        code = None
    if code in TWILIO_DELIVERY:
        kind, our_code, text = TWILIO_DELIVERY[code]
        return SendError(kind, _noted(text, f"Twilio error {code}"), code=our_code)
    if code in TWILIO_REFUSED:
        our_code, text = TWILIO_REFUSED[code]
        return SendError(ErrorKind.REFUSED, _noted(text, f"Twilio error {code}"), code=our_code)
    if code in TWILIO_SERVICE:
        return SendError(ErrorKind.SERVICE, _noted(TWILIO_SERVICE[code], f"Twilio error {code}"))
    shown = code if code is not None else "none given"
    return SendError(ErrorKind.REFUSED, f"The text was not delivered (Twilio error {shown}).", code=REFUSED_TEXT)


def _noted(text: str, reference: str) -> str:
    """"The number is not valid (Twilio error 21211, HTTP 400)." """
    return f"{text.rstrip('.')} ({reference})."
