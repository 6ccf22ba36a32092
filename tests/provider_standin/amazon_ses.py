"""Amazon SES v2: ``POST /v2/email/outbound-emails`` with the raw MIME message, as boto3 sends it."""

import base64
import email
import email.policy
import json
import re
import uuid

from .account import Provider, Refused, addr_spec, kind_of

NAME = "amazon_ses"
PATH = re.compile(r"^/v2/email/outbound-emails$")


def handle(provider: Provider, path: str, headers: dict, body: bytes):
    if provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(403, {"message": "The security token included in the request is invalid."},
                      {"x-amzn-ErrorType": "UnrecognizedClientException"})
    data = json.loads(body)
    raw = base64.b64decode(data["Content"]["Raw"]["Data"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    to = [addr_spec(a) for a in (data.get("Destination") or {}).get("ToAddresses") or str(parsed["To"] or "").split(",") if a.strip()]
    kinds = {kind_of(a) for a in to}
    if "invalid" in kinds:
        provider.counters.refused += 1
        raise Refused(400, {"message": "Illegal address"}, {"x-amzn-ErrorType": "BadRequestException"})
    if "inactive" in kinds:
        provider.counters.refused += 1
        raise Refused(400, {"message": "Email address is on the account-level suppression list."},
                      {"x-amzn-ErrorType": "MessageRejected"})
    text = html = ""
    for part in parsed.walk():
        if part.get_content_type() == "text/plain" and not text:
            text = part.get_content()
        elif part.get_content_type() == "text/html" and not html:
            html = part.get_content()
    metadata = json.loads(str(parsed.get("X-Metadata") or "{}"))
    message_id = f"0100{uuid.uuid4().hex}-standin"
    for address in to:
        provider.accept(NAME, {
            "to": address, "subject": str(parsed["Subject"] or ""), "text": text, "html": html,
            "metadata": metadata, "from": data.get("FromEmailAddress") or str(parsed["From"] or ""), "tags": [],
            "message_id": message_id,
        })
    return 200, {"MessageId": message_id}, {}


def throttled(headers: dict):
    return 429, {"message": "Maximum sending rate exceeded."}, {**headers, "x-amzn-ErrorType": "TooManyRequestsException"}


def unavailable(status: int):
    error_type = "ServiceUnavailable" if status == 503 else "InternalFailure"
    return status, {"message": "Service is unavailable."}, {"x-amzn-ErrorType": error_type}


def anymail_settings(url: str) -> dict:
    return {
        "AMAZON_SES_CLIENT_PARAMS": {
            "endpoint_url": url, "region_name": "us-east-1",
            "aws_access_key_id": "standin", "aws_secret_access_key": "standin",
            # What portal_project.settings gives boto3 when EMAIL_PROVIDER=amazon_ses.
            "config": {"connect_timeout": 10, "read_timeout": 30, "retries": {"mode": "standard", "total_max_attempts": 1}},
        },
    }
