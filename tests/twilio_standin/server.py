"""The stand-in's HTTP server: one Twilio account (`account.Account`) on 127.0.0.1, in a thread of
the test process (`TwilioStandIn().start()`) or as its own process (`TwilioStandIn.serve_forever`), with its
control API (``/_standin/...``) and that API's client side (`control`, `TwilioStandIn.stats`, ...)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from dataclasses import asdict
from typing import Any, Optional

from tests.standin_http import REASONS, HttpStandIn, control

from .account import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MESSAGES_PATH,
    MESSAGING_SERVICE_SID,
    Account,
    TwilioBehaviour,
    TwilioError,
)
from .webhooks import inbound_params, post_quietly, post_signed, status_params


class TwilioStandIn(HttpStandIn):
    """One stand-in Twilio account on 127.0.0.1."""

    name = "Twilio stand-in"
    content_type = "application/json; charset=utf-8"

    def __init__(self, port: int = 0, behaviour: Optional[TwilioBehaviour] = None):
        super().__init__(port)
        self.account = Account(behaviour)
        self._callbacks_due: set[asyncio.Task] = set()

    def django_settings(self, *, messaging_service: bool = False, **overrides: Any) -> dict[str, Any]:
        """The settings that send the portal's texts here through the real twilio client."""
        return {
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID if messaging_service else "",
            "TWILIO_FROM_NUMBER": "" if messaging_service else FROM_NUMBER,
            "TWILIO_API_URL": self.url, "TWILIO_TIMEOUT": 10.0, **overrides,
        }

    def environment(self, *, messaging_service: bool = False) -> dict[str, str]:
        """The same as environment variables, for a worker process."""
        return {key: str(value) for key, value in self.django_settings(messaging_service=messaging_service).items()}

    def client(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        """A real twilio Client that talks to this stand-in."""
        from twilio.rest import Client

        client = Client(account_sid, auth_token)
        client.api.base_url = self.url
        return client

    def banner(self) -> str:
        return f"{super().banner()} (account {ACCOUNT_SID}, token {AUTH_TOKEN})"

    async def _respond(self, method: str, path: str, headers: dict, body: bytes):
        if path.startswith("/_standin/"):
            return await self._control(method, path, body)
        match = MESSAGES_PATH.match(path)
        if match is None:
            return 404, TwilioError(404, 20404, f"The requested resource {path} was not found").body()
        if method != "POST":
            return 405, TwilioError(405, 20004, "Method not allowed").body()
        account = self.account
        counters = account.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            behaviour = account.behaviour
            delay = behaviour.latency + (behaviour.jitter * ((counters.requests * 7919) % 1000) / 1000 if behaviour.jitter else 0)
            if delay:
                await asyncio.sleep(delay)
            try:
                account.check_auth(headers, match["account"])
                if account.take_token() is not None:
                    counters.throttled += 1
                    raise TwilioError(429, 20429, "Too Many Requests")
                if behaviour.fail_next > 0:
                    behaviour.fail_next -= 1
                    counters.failed_5xx += 1
                    status = behaviour.fail_status
                    raise TwilioError(status, 20500 if status == 500 else 20503, REASONS.get(status, "Server Error"))
                form = {key: values[-1] for key, values in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items()}
                message = account.create_message(form)
            except TwilioError as error:
                return error.status, error.body()
            if behaviour.callbacks and form.get("StatusCallback"):
                task = asyncio.get_running_loop().create_task(self._send_statuses(message, form["StatusCallback"]))
                self._callbacks_due.add(task)
                task.add_done_callback(self._callbacks_due.discard)
            return 201, message
        finally:
            counters.in_flight -= 1

    async def _send_statuses(self, message: dict[str, Any], url: str) -> None:
        """Twilio's status callbacks for one accepted text: queued, sent, delivered (or
        undelivered with 30006 for a landline), each signed with the auth token."""
        account = self.account
        landline = message["to"] in account.behaviour.landlines
        steps = [("queued", None), ("sent", None), ("undelivered", 30006) if landline else ("delivered", None)]
        loop = asyncio.get_running_loop()
        for status, error_code in steps:
            await asyncio.sleep(account.behaviour.callback_delay)
            params = status_params(
                message["sid"], status, to=message["to"], from_=message["from"] or FROM_NUMBER, error_code=error_code,
                messaging_service_sid=message["messaging_service_sid"] or "",
            )
            for kept in account.messages:
                if kept["sid"] == message["sid"]:
                    kept["status"], kept["error_code"] = status, error_code
            answer, _ = await loop.run_in_executor(None, post_quietly, url, params)
            account.counters.callbacks_posted += 1
            if not 200 <= answer < 300:
                account.counters.callbacks_failed += 1
            account.callbacks.append({"sid": message["sid"], "status": status, "url": url, "answer": answer})

    async def _control(self, method: str, path: str, body: bytes):
        account = self.account
        if path == "/_standin/stats":
            return 200, {**account.counters.as_dict(), "behaviour": asdict(account.behaviour)}
        if path == "/_standin/messages":
            return 200, account.messages
        if path == "/_standin/callbacks":
            return 200, account.callbacks
        if path == "/_standin/reset" and method == "POST":
            # A call still in flight (a client that gave up waiting) would land in the new counts.
            until = time.monotonic() + 10
            while account.counters.in_flight and time.monotonic() < until:
                await asyncio.sleep(0.01)
            for task in list(self._callbacks_due):  # an earlier test's texts report no more
                task.cancel()
            account.reset()
            account.configure({**asdict(TwilioBehaviour()), **json.loads(body or b"{}")})
            return 200, {"ok": True}
        if path == "/_standin/config" and method == "POST":
            try:
                account.configure(json.loads(body or b"{}"))
            except ValueError as exc:
                return 400, {"message": str(exc)}
            return 200, asdict(account.behaviour)
        if path == "/_standin/inbound" and method == "POST":
            data = json.loads(body or b"{}")
            account.reply(from_=data["from"], body=data["body"])
            params = inbound_params(from_=data["from"], body=data["body"], to=data.get("to") or FROM_NUMBER)
            answer, text = await asyncio.get_running_loop().run_in_executor(
                None, lambda: post_signed(data["url"], params, signed_url=data.get("signed_url", ""))
            )
            return 200, {"answer": answer, "body": text, "params": params}
        return 404, {"message": "unknown control path"}

    # -- the client side of the control API (tests, the benchmark) -----------------------------

    def stats(self) -> dict[str, Any]:
        return control(self.url, "stats")

    def accepted(self) -> list[dict[str, Any]]:
        return control(self.url, "messages")

    def callbacks(self) -> list[dict[str, Any]]:
        return control(self.url, "callbacks")

    def configure(self, **changes: Any) -> None:
        control(self.url, "config", changes)

    def reset(self, **behaviour: Any) -> None:
        control(self.url, "reset", behaviour)

    def reply(self, url: str, *, from_: str, body: str, to: str = FROM_NUMBER, signed_url: str = "") -> dict[str, Any]:
        """A patient texts us: the account handles STOP / START as Twilio does, and the inbound
        webhook at `url` gets the signed POST. Its answer (status, body) and the fields posted."""
        return control(self.url, "inbound", {"url": url, "from": from_, "body": body, "to": to, "signed_url": signed_url})


