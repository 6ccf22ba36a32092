"""Postmark: ``POST /email`` (one message per call) and ``POST /email/batch``."""

import json
import re
import time
import uuid

from .account import Provider, Refused, addr_spec, kind_of

NAME = "postmark"
PATH = re.compile(r"^/email(/batch)?$")
POSTMARK_TOKEN = "standin-postmark-token"


def _one(provider: Provider, data: dict) -> dict:
    to = data.get("To") or ""
    if not data.get("From"):
        return {"ErrorCode": 300, "Message": "Invalid 'From' address: ''."}
    addresses = [addr_spec(part) for part in to.split(",") if part.strip()]
    invalid = [a for a in addresses if kind_of(a) == "invalid"]
    if invalid or not addresses:
        provider.counters.refused += 1
        return {"ErrorCode": 300, "Message": f"Invalid 'To' address: '{invalid[0] if invalid else ''}'."}
    inactive = [a.lower() for a in addresses if kind_of(a) == "inactive"]
    if inactive and len(inactive) == len(addresses):
        provider.counters.refused += 1
        return {
            "ErrorCode": 406,
            "Message": "You tried to send to recipient(s) that have been marked as inactive.\n"
            f"Found inactive addresses: {', '.join(inactive)}.\n"
            "Inactive recipients are ones that have generated a hard bounce or a spam complaint. ",
        }
    message_id = str(uuid.uuid4())
    for address in addresses:
        if address.lower() in inactive:
            continue
        provider.accept(NAME, {
            "to": address, "subject": data.get("Subject", ""), "text": data.get("TextBody", ""),
            "html": data.get("HtmlBody", ""), "metadata": data.get("Metadata") or {}, "from": data.get("From", ""),
            "tags": [data["Tag"]] if data.get("Tag") else [], "message_id": message_id,
        })
    return {"To": to, "SubmittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}


def handle(provider: Provider, path: str, headers: dict, body: bytes):
    if headers.get("x-postmark-server-token") != POSTMARK_TOKEN or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token."})
    try:
        data = json.loads(body)
    except ValueError:
        raise Refused(422, {"ErrorCode": 402, "Message": "Received invalid JSON input."})
    if path == "/email/batch":
        return 200, [_one(provider, one) for one in data], {}
    answer = _one(provider, data)
    return (200 if answer["ErrorCode"] == 0 else 422), answer, {}


def throttled(headers: dict):
    return 429, {"ErrorCode": 429, "Message": "Rate limit exceeded. Slow down."}, headers


def unavailable(status: int):
    return status, {"ErrorCode": 0, "Message": "Service unavailable"}, {}


def anymail_settings(url: str) -> dict:
    return {"POSTMARK_SERVER_TOKEN": POSTMARK_TOKEN, "POSTMARK_API_URL": f"{url}/"}
