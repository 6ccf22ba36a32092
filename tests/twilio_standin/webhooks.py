"""What Twilio sends to the app's webhooks: the signature (`sign`), the form fields of a status
callback (`status_params`) and of a patient's text (`inbound_params`), and posting them signed
over HTTP (`post_signed`, `post_inbound`)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Optional

from twilio.request_validator import RequestValidator

from .account import ACCOUNT_SID, API_VERSION, AUTH_TOKEN, FROM_NUMBER, segments


def sign(url: str, params: dict[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio sends with a POST of `params` to `url`."""
    return RequestValidator(auth_token).compute_signature(url, params)


def status_params(sid: str, status: str, *, to: str, from_: str = FROM_NUMBER, error_code: Optional[int] = None,
                  messaging_service_sid: str = "", account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form fields of Twilio's status callback for a text."""
    params = {
        "AccountSid": account_sid, "ApiVersion": API_VERSION, "From": from_, "To": to,
        "MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def inbound_params(*, from_: str, body: str, to: str = FROM_NUMBER, message_sid: str = "", messaging_service_sid: str = "",
                   opt_out_type: str = "", account_sid: str = ACCOUNT_SID) -> dict[str, str]:
    """The form fields of Twilio's webhook for a text a patient sent us. `opt_out_type` (STOP,
    START, HELP) is what a messaging service with Advanced Opt-Out adds for its keywords."""
    sid = message_sid or "SM" + uuid.uuid4().hex
    params = {
        "AccountSid": account_sid, "ApiVersion": API_VERSION, "MessageSid": sid, "SmsSid": sid,
        "SmsMessageSid": sid, "From": from_, "To": to, "Body": body, "NumMedia": "0",
        "NumSegments": str(segments(body)), "SmsStatus": "received",
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    if opt_out_type:
        params["OptOutType"] = opt_out_type
    return params


def post_signed(url: str, params: dict[str, str], *, signed_url: str = "", auth_token: str = AUTH_TOKEN,
                timeout: float = 10.0) -> tuple[int, str]:
    """POST `params` to `url` as Twilio does, signed for `signed_url` (the public URL Twilio
    was given, when `url` is the address behind the proxy; default `url`). (status, body)."""
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "User-Agent": "TwilioProxy/1.1",
        "X-Twilio-Signature": sign(signed_url or url, params, auth_token),
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def post_inbound(url: str, *, from_: str, body: str, signed_url: str = "", **fields_: str) -> tuple[int, str]:
    """POST a patient's text to the app's inbound webhook at `url`, signed as Twilio signs it."""
    return post_signed(url, inbound_params(from_=from_, body=body, **fields_), signed_url=signed_url)


def post_quietly(url: str, params: dict[str, str]) -> tuple[int, str]:
    """`post_signed` for the stand-in's own status callbacks: a receiver that is down answers 0."""
    try:
        return post_signed(url, params)
    except (OSError, ValueError):
        return 0, ""  # the receiver is down: Twilio would log it in its debugger
