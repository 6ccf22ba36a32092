"""The lender's payment-plan events webhook (contract in README.md, "Payment-plan events webhook").

Every answer is JSON. Accepted events (new, older, duplicate) get 200; anything else a 4xx
{"error": <code>, "detail": <what is wrong>}; a database outage 503 so the lender retries.
"""

import datetime
import hashlib
import hmac
import json
import logging
import re
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DataError, DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from patients.models import Patient

from . import services
from .models import ApplicationStatus, PracticeLenderSettings

logger = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Lender-Timestamp"
SIGNATURE_HEADER = "X-Lender-Signature"
MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)
REQUIRED_FIELDS = ("event_id", "application_id", "practice", "patient", "type", "occurred_at")
MAX_ID_LENGTH = 100


class Rejected(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status)


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<raw body>" with the practice's secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _now() -> datetime.datetime:
    return timezone.now()


@csrf_exempt
def payment_plan_events(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "POST a JSON event to this address.")
        response["Allow"] = "POST"
        return response
    now = _now()
    try:
        return _handle(request, now)
    except Rejected as exc:
        logger.info("Lender event rejected: %s", exc.code)
        return _error(exc.status, exc.code, exc.detail)
    except services.EventRejected as exc:
        logger.info("Lender event rejected: %s", exc.code)
        return _error(exc.status, exc.code, exc.detail)
    except DataError:
        # A signed event whose values the database refuses (the checks above let something
        # through): retrying cannot help, so it is the sender's 400, not our 503.
        logger.warning("Lender event refused by the database: data error")
        return _error(400, "invalid_field", "A field holds a value that cannot be stored; check the event's fields.")
    except DatabaseError:
        logger.exception("Lender event not stored: database error")
        return _error(503, "temporarily_unavailable", "The event was not stored; send it again later.")


def _handle(request: HttpRequest, now: datetime.datetime) -> JsonResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        raise Rejected(413, "payload_too_large", "The request body is too large for one event.")
    payload = _parse(body)
    lender_settings = _lender_settings(payload)
    _verify_signature(request, body, lender_settings, now)

    # Signed: from here on the payload is the lender's word.
    fields = _validate(payload, now)
    patient = Patient.objects.filter(
        practice_id=lender_settings.practice_id, chart_number=fields["patient"]
    ).only("pk").first()
    if patient is None:
        raise Rejected(
            422, "unknown_patient", f"Practice {lender_settings.practice_id} has no patient with chart number {fields['patient']!r}."
        )
    result = services.apply_event(
        practice_id=lender_settings.practice_id,
        event_id=fields["event_id"],
        lender_application_id=fields["application_id"],
        patient_id=patient.pk,
        event_type=fields["type"],
        occurred_at=fields["occurred_at"],
        now=now,
    )
    return JsonResponse(
        {
            "result": result.outcome,
            "event_id": fields["event_id"],
            "application_id": result.application.lender_application_id,
            "status": result.application.status,
        }
    )


#: An event is a flat object; deeper nesting than this is refused before it is parsed.
MAX_JSON_DEPTH = 8


def _nesting_depth(body: bytes) -> int:
    """How deep the body's arrays and objects nest, counted without parsing (strings skipped), so
    a body nested 100,000 levels deep costs one pass over its bytes, not a RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _parse(body: bytes) -> dict[str, Any]:
    if _nesting_depth(body) > MAX_JSON_DEPTH:
        raise Rejected(400, "malformed_json", f"The body nests deeper than {MAX_JSON_DEPTH} levels; an event is a flat JSON object.")
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = type(exc).__name__ if isinstance(exc, RecursionError) else exc
        raise Rejected(400, "malformed_json", f"The body is not valid UTF-8 JSON ({reason}).")
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed_json", "The body must be a JSON object.")
    return payload


PRACTICE_ID = re.compile(r"[0-9]{1,18}")


def _lender_settings(payload: dict[str, Any]) -> PracticeLenderSettings:
    # The practice is read before the signature is checked only to find whose secret to use.
    if "practice" not in payload:
        raise Rejected(400, "missing_field", "Field 'practice' is required (the practice id).")
    practice_id = payload["practice"]
    # ASCII digits only ("²".isdigit() is true) and within a database id's range.
    if isinstance(practice_id, bool) or not isinstance(practice_id, (int, str)) or not PRACTICE_ID.fullmatch(str(practice_id)):
        raise Rejected(400, "invalid_field", "Field 'practice' must be the practice's numeric id.")
    lender_settings = PracticeLenderSettings.objects.filter(practice_id=int(practice_id)).first()
    if lender_settings is None:
        raise Rejected(
            404,
            "unknown_practice",
            f"Practice {practice_id} does not exist or has no lender webhook secret set up.",
        )
    return lender_settings


def _verify_signature(request: HttpRequest, body: bytes, lender_settings: PracticeLenderSettings, now) -> None:
    timestamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    signature = request.headers.get(SIGNATURE_HEADER, "").strip().lower()
    if not timestamp or not signature:
        raise Rejected(401, "missing_signature", f"Headers {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required.")
    if not any(
        hmac.compare_digest(expected_signature(secret, timestamp, body), signature)
        for secret in lender_settings.secrets_valid_at(now)
    ):
        raise Rejected(
            401,
            "bad_signature",
            f"{SIGNATURE_HEADER} is not the hex HMAC-SHA256 of '<timestamp>.<body>' with this practice's secret.",
        )
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Rejected(401, "stale_timestamp", f"{TIMESTAMP_HEADER} must be Unix time in seconds.")
    if abs(now.timestamp() - sent_at) > MAX_CLOCK_SKEW.total_seconds():
        raise Rejected(
            401,
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is more than 5 minutes from our clock ({int(now.timestamp())}); "
            "sign each request when it is sent.",
        )


def _validate(payload: dict[str, Any], now: datetime.datetime) -> dict[str, Any]:
    missing = [name for name in REQUIRED_FIELDS if payload.get(name) in (None, "")]
    if missing:
        raise Rejected(400, "missing_field", f"Missing required field(s): {', '.join(missing)}.")
    fields: dict[str, Any] = {}
    for name in ("event_id", "application_id", "patient"):
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise Rejected(400, "invalid_field", f"Field {name!r} must be a string.")
        value = str(value).strip()
        if not value or len(value) > MAX_ID_LENGTH:
            raise Rejected(400, "invalid_field", f"Field {name!r} must be 1 to {MAX_ID_LENGTH} characters.")
        if any(ord(character) < 32 or ord(character) == 127 for character in value):
            raise Rejected(400, "invalid_field", f"Field {name!r} must not contain control characters (such as NUL).")
        fields[name] = value

    event_type = payload["type"]
    if event_type not in ApplicationStatus.values:
        raise Rejected(
            400,
            "unknown_event_type",
            f"Field 'type' is {event_type!r}; expected one of: {', '.join(ApplicationStatus.values)}.",
        )
    fields["type"] = event_type

    try:
        occurred_at = parse_datetime(payload["occurred_at"]) if isinstance(payload["occurred_at"], str) else None
    except ValueError:  # well-formed but impossible, e.g. month 13
        occurred_at = None
    if occurred_at is None or timezone.is_naive(occurred_at):
        raise Rejected(
            400,
            "invalid_field",
            "Field 'occurred_at' must be an ISO 8601 date and time with a UTC offset, e.g. 2026-03-02T14:05:00Z.",
        )
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise Rejected(400, "invalid_field", "Field 'occurred_at' is in the future.")
    fields["occurred_at"] = occurred_at
    return fields
