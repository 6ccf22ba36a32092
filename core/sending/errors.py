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
has one), botocore's error codes for Amazon SES, and smtplib's for the SMTP backend. Anything it
does not recognise is TEMPORARY: retried, then given up with its description, never lost.
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


def classify(exc: BaseException) -> SendError:
    kind, retry_after = _kind(exc)
    return SendError(kind=kind, detail=describe(exc), retry_after=retry_after)


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
