"""The stand-in's HTTP server: one provider account behind all four APIs on 127.0.0.1, in a
thread of the test process or as its own process."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import urllib.parse
from dataclasses import asdict
from typing import Any, Optional

from .account import Behaviour, Provider, Refused
from .client import APIS, anymail_settings, control

_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class StandIn:
    """One stand-in server (one provider account for each API) on 127.0.0.1."""

    def __init__(self, port: int = 0, behaviour: Optional[Behaviour] = None):
        self.provider = Provider(behaviour)
        self.port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def anymail_settings(self, provider: str) -> dict[str, Any]:
        """The ANYMAIL settings that point anymail's real backend for `provider` here."""
        return anymail_settings(self.url, provider)

    # -- in a thread of this process (tests) --------------------------------------------------

    def start(self) -> "StandIn":
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="provider-standin", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the provider stand-in did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            # Connections a client keeps alive end here, while the loop still runs.
            handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    # -- as its own process (benchmarks) -----------------------------------------------------

    async def serve_forever(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        print(f"provider stand-in listening on {self.url}", flush=True)
        async with self._server:
            await self._server.serve_forever()

    # -- one connection -----------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, target, _version = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, payload, extra = await self._respond(method, urllib.parse.urlsplit(target).path, headers, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}"]
                if payload is not None:
                    head.append("Content-Type: application/json")
                head += [f"{name}: {value}" for name, value in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            pass  # the client went away, or the stand-in is stopping
        finally:
            writer.close()

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
