"""What every HTTP request passes before any route sees it: a Host and an Origin this server answers to, and a
body that arrives in time.

The SDK checks Host and Origin inside ``/mcp`` only, so Starlette's trailing-slash redirect (``POST /mcp/`` →
307 to whatever Host the caller sent) and every other route answered first. Its ``name:*`` also took any text
after the colon (``127.0.0.1:8811@evil.example``). Here the check is the outermost layer, and an allow-list
entry must match the whole header: ``*`` stands for a port, digits only.

Without a configured list the server answers loopback names on any port (a port forward changes the port a
client sees), but a browser page only from the server's own origin: a page on another local port (any local web
app) must not drive it.

The probes (``GET /healthz``, ``/readyz``) also accept no Host at all or an IP address, which is what load
balancers and the kubelet send; a DNS-rebinding page always sends its own host name, so this opens nothing.

A body is read within ``ATLASCLOUD_HTTP_BODY_TIMEOUT`` of the moment the app starts reading it (after the
bearer was accepted): a client that sends part of one and stalls gets 408 and its connection closed, instead
of holding a request open for as long as it likes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence

import anyio
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowList", "HttpGuard"]

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
PROBES = frozenset({"/healthz", "/readyz"})


def _entry_pattern(entry: str) -> str:
    """One allow-list entry as a regular expression: the entry itself, with a trailing ``:*`` as any port."""
    entry = entry.lower()
    if entry.endswith(":*"):
        return re.escape(entry[:-2]) + r":[0-9]{1,5}"
    return re.escape(entry)


class AllowList:
    """The Host values and browser origins a server answers; each must match one entry, whole."""

    def __init__(self, hosts: Sequence[str], origins: Sequence[str]) -> None:
        self._hosts = re.compile("|".join(f"(?:{_entry_pattern(host)})" for host in hosts) or r"(?!)")
        self._origins = re.compile("|".join(f"(?:https?://{_entry_pattern(origin)})" for origin in origins) or r"(?!)")

    @classmethod
    def configured(cls, hosts: Sequence[str], port: int) -> AllowList:
        """The operator's list for both; without one, loopback names (any port) and this server's own origin."""
        if hosts:
            return cls(hosts, hosts)
        return cls([f"{name}:*" for name in LOOPBACK_NAMES], [f"{name}:{port}" for name in LOOPBACK_NAMES])

    def host_ok(self, host: str | None) -> bool:
        return host is not None and self._hosts.fullmatch(host.lower()) is not None

    def origin_ok(self, origin: str | None) -> bool:
        """No Origin is a request from no browser page (or a same-origin GET): nothing to check."""
        return origin is None or self._origins.fullmatch(origin.lower()) is not None


def _ip_literal(host: str | None) -> bool:
    """No Host, or an IP address with an optional port: what a probe that addresses a replica directly sends."""
    if host is None:
        return True
    address = host
    if host.startswith("["):
        address, _, port = host[1:].partition("]")
        if port and not re.fullmatch(r":[0-9]{1,5}", port):
            return False
    elif host.count(":") == 1:
        address, _, port = host.partition(":")
        if not port.isascii() or not port.isdigit():
            return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


class HttpGuard:
    """The outermost ASGI layer of the HTTP server: Host and Origin first, then a deadline on the body."""

    def __init__(self, app: ASGIApp, *, allowed: AllowList, body_timeout: float) -> None:
        self.app = app
        self.allowed = allowed
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        probe = scope["method"] in ("GET", "HEAD") and scope["path"] in PROBES
        if not (self.allowed.host_ok(host) or (probe and _ip_literal(host))):
            logger.warning("refused a request for Host %r (not in ATLASCLOUD_HTTP_ALLOWED_HOSTS)", host)
            await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
            return
        if not self.allowed.origin_ok(headers.get("origin")):
            logger.warning("refused a request from Origin %r", headers.get("origin"))
            await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
            return
        await _BodyDeadline(self.app, self.body_timeout)(scope, receive, send)


class _BodyDeadline:
    """One request: its body must arrive within ``seconds`` of the first read, or it is answered 408."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.deadline: float | None = None
        self.body_done = False
        self.started = False  # the app began its response
        self.timed_out = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_receive() -> Message:
            if self.timed_out:
                return {"type": "http.disconnect"}
            if self.body_done:
                return await receive()
            if self.deadline is None:
                self.deadline = anyio.current_time() + self.seconds
            with anyio.move_on_after(self.deadline - anyio.current_time()):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    self.body_done = True
                return message
            await self._too_slow(scope, send)
            return {"type": "http.disconnect"}  # what the app sees: a caller that went away

        async def guarded_send(message: Message) -> None:
            if self.timed_out:
                return  # the 408 is the answer; the app's own, after the disconnect, goes nowhere
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)

    async def _too_slow(self, scope: Scope, send: Send) -> None:
        self.timed_out = True
        logger.warning(
            "a request body to %s did not arrive within %g s (ATLASCLOUD_HTTP_BODY_TIMEOUT): answered 408",
            scope["path"],
            self.seconds,
        )
        if self.started:
            return
        body = f"The request body did not arrive within {self.seconds:g} s.\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
