"""The HTTP side the provider stand-ins share (`tests.provider_standin`, `tests.twilio_standin`): an
asyncio server on 127.0.0.1 that runs in a thread of the test process (`start` / `stop`) or as its
own process (`serve_forever`), keeps connections alive as the real clients expect, and answers each
request with the subclass's ``async _respond(method, path, headers, body)`` ->
``(status, JSON payload or None[, extra headers])``; and the token bucket (or the strict one-second window) of their rate limits."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Optional

REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class TokenBucket:
    """A provider's requests-per-second limit: `take` says None (go) or how long until a token."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._tokens: Optional[float] = None
        self._refilled = time.monotonic()

    def take(self, rate: float, capacity: float) -> Optional[float]:
        if rate <= 0:
            return None
        now = time.monotonic()
        if self._tokens is None:
            self._tokens, self._refilled = capacity, now
        self._tokens = min(capacity, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate


class FixedWindow:
    """A provider's requests-per-second limit counted strictly in each whole second of its clock:
    at most `rate` requests in one second, and the next waits for the next second to begin (what a
    sender keeping exactly to the same rate meets now and then, when timing jitter moves one of
    its requests into the following second). `take` says None (go) or how long until that second."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._second: Optional[int] = None
        self._count = 0

    def take(self, rate: float) -> Optional[float]:
        if rate <= 0:
            return None
        now = time.time()
        second = math.floor(now)
        if second != self._second:
            self._second, self._count = second, 0
        if self._count < rate:
            self._count += 1
            return None
        return second + 1 - now


class HttpStandIn:
    #: What the stand-in is called in its thread's name and its messages.
    name = "stand-in"
    content_type = "application/json"

    def __init__(self, port: int = 0):
        self.port = port
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def banner(self) -> str:
        return f"{self.name} listening on {self.url}"

    # -- in a thread of this process (tests) --------------------------------------------------

    def start(self):
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

        self._thread = threading.Thread(target=serve, name=self.name.lower().replace(" ", "-"), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"the {self.name} did not start")
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
        print(self.banner(), flush=True)
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
                status, payload, *rest = await self._respond(method, urllib.parse.urlsplit(target).path, headers, body)
                extra = rest[0] if rest else {}
                data = b"" if payload is None else json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Length: {len(data)}"]
                if payload is not None:
                    head.append(f"Content-Type: {self.content_type}")
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
        raise NotImplementedError


def control(url: str, what: str, data: Optional[dict] = None, *, timeout: float = 30) -> Any:
    """The client side of a stand-in's control API (``/_standin/<what>``): GET it, or POST `data`
    as JSON; the JSON answer."""
    request = urllib.request.Request(
        f"{url}/_standin/{what}", data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST", headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
