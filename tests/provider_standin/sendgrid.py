"""SendGrid: ``POST /v3/mail/send`` with one personalization (and its substitutions) per recipient."""

import json
import re
import uuid

from .account import Provider, Refused, kind_of

NAME = "sendgrid"
PATH = re.compile(r"^/v3/mail/send$")
SENDGRID_KEY = "standin-sendgrid-key"


def handle(provider: Provider, path: str, headers: dict, body: bytes):
    if headers.get("authorization") != f"Bearer {SENDGRID_KEY}" or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"errors": [{"field": None, "message": "The provided authorization grant is invalid, expired, or revoked"}]})
    data = json.loads(body)
    personalizations = data.get("personalizations") or []
    if len(personalizations) > 1000:
        raise Refused(400, {"errors": [{"field": "personalizations", "message": "The personalizations field may not have more than 1000 objects."}]})
    for index, personalization in enumerate(personalizations):
        for number, to in enumerate(personalization.get("to") or []):
            if kind_of(to.get("email", "")) == "invalid":
                provider.counters.refused += 1
                raise Refused(400, {"errors": [{"field": f"personalizations.{index}.to.{number}.email",
                                                "message": "Does not contain a valid address."}]})
    content = {part["type"]: part["value"] for part in data.get("content") or []}
    message_id = uuid.uuid4().hex[:22]
    for personalization in personalizations:
        values = personalization.get("substitutions") or {}
        pattern = re.compile("|".join(re.escape(key) for key in sorted(values, key=len, reverse=True))) if values else None

        def fill(text: str) -> str:
            return pattern.sub(lambda m: values[m.group(0)], text or "") if pattern else (text or "")

        metadata = {**(data.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
        for to in personalization.get("to") or []:
            provider.accept(NAME, {
                "to": to["email"], "subject": fill(personalization.get("subject") or data.get("subject", "")),
                "text": fill(content.get("text/plain", "")), "html": fill(content.get("text/html", "")),
                "metadata": metadata, "from": (data.get("from") or {}).get("email", ""),
                "tags": data.get("categories") or [], "message_id": message_id,
            })
    return 202, None, {"X-Message-Id": message_id}


def throttled(headers: dict):
    return 429, {"errors": [{"field": None, "message": "too many requests"}]}, headers


def unavailable(status: int):
    return status, {"message": "Service temporarily unavailable"}, {}


def anymail_settings(url: str) -> dict:
    return {"SENDGRID_API_KEY": SENDGRID_KEY, "SENDGRID_API_URL": f"{url}/v3/"}
