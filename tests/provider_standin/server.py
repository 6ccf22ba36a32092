"""The stand-in's HTTP server: one provider account behind all four APIs on 127.0.0.1, in a
thread of the test process or as its own process."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import asdict
from typing import Any, Optional

from tests.standin_http import HttpStandIn, control

from .account import Behaviour, Provider, Refused
from .client import APIS, anymail_settings


class StandIn(HttpStandIn):
    """One stand-in server (one provider account for each API) on 127.0.0.1."""

    name = "provider stand-in"

    def __init__(self, port: int = 0, behaviour: Optional[Behaviour] = None):
        super().__init__(port)
        self.provider = Provider(behaviour)

    def anymail_settings(self, provider: str) -> dict[str, Any]:
        """The ANYMAIL settings that point anymail's real backend for `provider` here."""
        return anymail_settings(self.url, provider)

    async def _respond(self, method: str, path: str, headers: dict, body: bytes):
        provider = self.provider
        if path.startswith("/_standin/"):
            return self._control(method, path, body)
        api = next((api for api in APIS.values() if api.PATH.match(path)), None)
        if api is None:
            return 404, {"message": f"no such API: {path}"}, {}
        if method != "POST":
            return 405, {"message": "POST only"}, {}
        counters = provider.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            behaviour = provider.behaviour
            delay = behaviour.latency + (behaviour.jitter * ((counters.requests * 7919) % 1000) / 1000 if behaviour.jitter else 0)
            if delay:
                await asyncio.sleep(delay)
            wait = provider.take_token()
            if wait is not None:
                counters.throttled += 1
                return api.throttled({"Retry-After": str(max(1, math.ceil(wait)))} if behaviour.retry_after else {})
            if behaviour.fail_next > 0:
                behaviour.fail_next -= 1
                counters.failed_5xx += 1
                return api.unavailable(behaviour.fail_status)
            try:
                return api.handle(provider, path, headers, body)
            except Refused as refused:
                return refused.status, refused.body, refused.headers
        finally:
            counters.in_flight -= 1

    def _control(self, method: str, path: str, body: bytes):
        provider = self.provider
        if path == "/_standin/stats":
            return 200, {**provider.counters.as_dict(), "behaviour": asdict(provider.behaviour)}, {}
        if path == "/_standin/messages":
            return 200, provider.messages, {}
        if path == "/_standin/reset" and method == "POST":
            provider.reset()
            if body:
                provider.configure({**asdict(Behaviour()), **json.loads(body)})
            return 200, {"ok": True}, {}
        if path == "/_standin/config" and method == "POST":
            try:
                provider.configure(json.loads(body or b"{}"))
            except ValueError as exc:
                return 400, {"message": str(exc)}, {}
            return 200, asdict(provider.behaviour), {}
        return 404, {"message": "unknown control path"}, {}

    # -- the client side of the control API (tests, the benchmark) -----------------------------

    def stats(self) -> dict[str, Any]:
        return control(self.url, "stats")

    def accepted(self) -> list[dict[str, Any]]:
        return control(self.url, "messages")

    def configure(self, **changes: Any) -> None:
        control(self.url, "config", changes)

    def reset(self, **behaviour: Any) -> None:
        control(self.url, "reset", behaviour)
