"""Mailgun: ``POST /v3/<domain>/messages``, a batch with ``recipient-variables`` (``%recipient.x%``
substituted per recipient, as Mailgun does), as a form or multipart form."""

import base64
import email
import email.policy
import json
import re
import urllib.parse
import uuid

from .account import Provider, Refused, addr_spec, kind_of

NAME = "mailgun"
PATH = re.compile(r"^/v3/[^/]+/messages$")
MAILGUN_KEY = "standin-mailgun-key"
MAILGUN_DOMAIN = "mg.portal.example"
_RECIPIENT_VARIABLE = re.compile(r"%recipient\.([^%]+)%")


def _substitute(text: str, values: dict) -> str:
    return _RECIPIENT_VARIABLE.sub(lambda m: str(values.get(m.group(1), m.group(0))), text or "")


def _form(headers: dict, body: bytes) -> dict[str, list[str]]:
    content_type = headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        parsed = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        form: dict[str, list[str]] = {}
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            form.setdefault(name, []).append(part.get_content() if part.get_content_maintype() == "text" else "")
        return form
    return urllib.parse.parse_qs(body.decode(), keep_blank_values=True)


def handle(provider: Provider, path: str, headers: dict, body: bytes):
    auth = headers.get("authorization", "")
    expected = "Basic " + base64.b64encode(f"api:{MAILGUN_KEY}".encode()).decode()
    if auth != expected or provider.behaviour.auth_fail:
        provider.counters.auth_refused += 1
        raise Refused(401, {"message": "Invalid private key"})
    domain = urllib.parse.unquote(path.split("/")[2])
    if domain != MAILGUN_DOMAIN:
        raise Refused(404, {"message": "Domain not found: " + domain})
    form = _form(headers, body)
    to = [addr_spec(a) for value in form.get("to", []) for a in value.split(",") if a.strip()]
    if not to or not form.get("from"):
        provider.counters.refused += 1
        raise Refused(400, {"message": "'to' parameter is missing" if not to else "'from' parameter is missing"})
    invalid = [a for a in to if kind_of(a) == "invalid"]
    if invalid:
        # Mailgun refuses the whole call when any one address is not an address.
        provider.counters.refused += 1
        raise Refused(400, {"message": f"to parameter is not a valid address. please check documentation ({invalid[0]})"})
    variables = json.loads(form.get("recipient-variables", ["{}"])[0] or "{}")
    if len(to) > 1000:
        raise Refused(400, {"message": "Too many recipients: at most 1000 per message"})
    message_id = f"<{uuid.uuid4().hex}@{MAILGUN_DOMAIN}>"
    custom = {key[2:]: values[0] for key, values in form.items() if key.startswith("v:")}
    for address in to:
        own = variables.get(address, {}) if variables else {}
        provider.accept(NAME, {
            "to": address,
            "subject": _substitute(form.get("subject", [""])[0], own),
            "text": _substitute(form.get("text", [""])[0], own),
            "html": _substitute(form.get("html", [""])[0], own),
            "metadata": {key: _substitute(value, own) for key, value in custom.items()},
            "from": form.get("from", [""])[0], "tags": form.get("o:tag", []), "message_id": message_id,
        })
    return 200, {"id": message_id, "message": "Queued. Thank you."}, {}


def throttled(headers: dict):
    return 429, {"message": "Too many requests"}, headers


def unavailable(status: int):
    return status, {"message": "Service temporarily unavailable"}, {}


def anymail_settings(url: str) -> dict:
    return {"MAILGUN_API_KEY": MAILGUN_KEY, "MAILGUN_API_URL": f"{url}/v3", "MAILGUN_SENDER_DOMAIN": MAILGUN_DOMAIN}
