"""Injected misbehaviour: the ways a real API, its proxies and its network go wrong.

A `Fault` matches requests by path prefix (and method) and replaces or distorts the
answer. Each kind imitates something clients meet in the wild: an outage page from
nginx, a 429 with Retry-After, a body cut short, a connection reset mid-request, a
body that drips in so slowly that no single read ever times out; or, with "fixture",
an answer exactly as recorded from the live service in tests/fixtures/atlas/.
`apply_fault` runs as the outermost ASGI layer so it can also abort the TCP connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Literal, get_args

import anyio
from pydantic import ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlas_mcp.emulator.fixtures import load

logger = logging.getLogger("atlas_mcp.emulator")


FaultKind = Literal[
    "status",
    "rate_limit",
    "delay",
    "malformed",
    "html",
    "unenveloped",
    "envelope_error",
    "reset",
    "missing_fields",
    "huge_body",
    "trickle",
    "redirect",
    "fixture",
    "json",
    "set_cookie",
]

_CHUNK = 64 * 1024
_ZEROS = bytes(_CHUNK)
MALFORMED_BODY = b'{"code": 200, "data": {"id": '
RATE_LIMIT_BODY = {"code": 429, "msg": "Too many requests, please slow down"}


@dataclass
class Fault:
    """One injected misbehaviour for requests whose path starts with `path`."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    path: str
    kind: FaultKind
    method: str | None = None  # None matches any method
    times: int | None = 1  # matching requests it applies to; None = until cleared
    status: int = 503  # for "status", "html", "envelope_error", "json"
    retry_after: float | None = None  # for "rate_limit": the Retry-After header, if any
    seconds: float = 0.0  # for "delay": wait, then answer normally; for "trickle": the pause between chunks
    size: int = 0  # for "huge_body" and "trickle": bytes streamed
    location: str = ""  # for "redirect": the Location header
    fixture: str = ""  # for "fixture": a recorded answer, e.g. "answers/prediction.not-visible-yet.404.json"
    body: Any = None  # for "json": this JSON body (a malicious Atlas: anything at all); for "html": the page
    message: str = "Service temporarily unavailable"
    cookie: str = "atlas_session=emulated; Path=/"  # for "set_cookie": the Set-Cookie header added to the answer

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(get_args(FaultKind))}")
        if not self.path.startswith("/"):
            raise ValueError(f"fault path must start with '/', got {self.path!r}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None (forever), got {self.times}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.kind == "redirect" and not self.location:
            raise ValueError("a redirect fault needs a location")
        if self.kind == "fixture" and not (self.fixture.startswith("answers/") and self.fixture.endswith(".json")):
            raise ValueError("a fixture fault needs a recorded answer, such as 'answers/balance.json'")
        if self.seconds < 0 or self.size < 0:
            raise ValueError("seconds and size must not be negative")

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path) and (self.method is None or self.method.upper() == method.upper())


async def _respond(send: Send, status: int, body: bytes, content_type: str, **headers: str) -> None:
    raw = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _respond_json(send: Send, status: int, payload: Any, **headers: str) -> None:
    await _respond(send, status, json.dumps(payload).encode(), "application/json", **headers)


def _retry_after_text(seconds: float) -> str:
    """Whole seconds as Atlas sends them; fractions kept so tests need not sleep for long."""
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _nginx_page(status: int) -> bytes:
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


async def _reset(receive: Receive, send: Send) -> None:
    """Drop the TCP connection with an RST and no response bytes.

    Under uvicorn, the `send` an outermost ASGI layer receives is a bound method of the
    connection's RequestResponseCycle, which holds the asyncio transport. Lingering off
    (SO_LINGER 0) makes the close an RST, which clients see as "connection reset". Without
    a transport (an in-process ASGI client), raising is the nearest equivalent.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise ConnectionResetError("emulated connection reset (no socket transport to abort)")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:  # the peer may already be gone; abort() still closes our side
            logger.debug("could not set SO_LINGER before reset", exc_info=True)
    transport.abort()
    # Wait for the server to notice the disconnect, so it does not log a missing response.
    with anyio.move_on_after(2):
        while (await receive())["type"] != "http.disconnect":
            pass


async def _huge_body(scope: Scope, send: Send, size: int) -> None:
    """`size` bytes, streamed in chunks without a Content-Length, so clients must cap while reading."""
    content_type = b"image/png" if scope["path"].endswith(".png") else b"application/octet-stream"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    remaining = size
    while remaining > 0:
        chunk = _ZEROS if remaining >= _CHUNK else _ZEROS[:remaining]
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
    if size == 0:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _trickle(scope: Scope, send: Send, size: int, pause: float) -> None:
    """A 200 whose `size` bytes arrive 1 KiB at a time, `pause` seconds apart: each read is quick, the whole
    answer takes ages, so only a deadline on the whole exchange stops a client from waiting for it."""
    content_type = b"image/png" if scope["path"].endswith(".png") else b"application/json"
    headers = [(b"content-type", content_type), (b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    remaining = size
    while remaining > 0:
        chunk = _ZEROS[: min(1024, remaining)]
        remaining -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
        if remaining > 0:
            await anyio.sleep(pause)
    if size == 0:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _unenveloped(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the app, then lift `data` out of a JSON envelope, as the seed page's samples expect."""
    start: Message | None = None
    body = bytearray()

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if content_type.startswith(b"application/json"):
                start = message
                return
        elif start is not None and message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            new_body = bytes(body)
            if isinstance(payload, dict) and "data" in payload:
                new_body = json.dumps(payload["data"]).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(new_body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": new_body, "more_body": False})
            return
        await send(message)

    await app(scope, receive, capture)


async def _with_cookie(app: ASGIApp, scope: Scope, receive: Receive, send: Send, cookie: str) -> None:
    """Answer normally, plus a ``Set-Cookie`` (as a gateway or a load balancer's stickiness does)."""

    async def add(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
        await send(message)

    await app(scope, receive, add)


async def apply_fault(fault: Fault, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request the way `fault` says, calling `app` where the fault wraps a normal answer."""
    logger.debug("fault %s applied to %s %s", fault.kind, scope["method"], scope["path"])
    kind = fault.kind
    if kind == "status":
        await _respond_json(send, fault.status, {"code": fault.status, "message": fault.message})
    elif kind == "rate_limit":
        extra = {} if fault.retry_after is None else {"retry_after": _retry_after_text(fault.retry_after)}
        await _respond_json(send, 429, RATE_LIMIT_BODY, **extra)
    elif kind == "delay":
        await anyio.sleep(fault.seconds)
        await app(scope, receive, send)
    elif kind == "malformed":
        await _respond(send, 200, MALFORMED_BODY, "application/json")
    elif kind == "html":
        page = fault.body.encode() if isinstance(fault.body, str) else _nginx_page(fault.status)
        await _respond(send, fault.status, page, "text/html")
    elif kind == "unenveloped":
        await _unenveloped(app, scope, receive, send)
    elif kind == "envelope_error":
        await _respond_json(send, 200, {"code": 500, "message": fault.message, "data": None})
    elif kind == "reset":
        await _reset(receive, send)
    elif kind == "missing_fields":
        await _respond_json(send, 200, {"code": 200, "message": "success", "data": {}})
    elif kind == "huge_body":
        await _huge_body(scope, send, fault.size)
    elif kind == "trickle":
        await _trickle(scope, send, fault.size, fault.seconds)
    elif kind == "json":
        await _respond_json(send, fault.status, fault.body)
    elif kind == "set_cookie":
        await _with_cookie(app, scope, receive, send, fault.cookie)
    elif kind == "fixture":
        answer = load(fault.fixture)
        await _respond_json(send, int(answer["status"]), answer["body"])
    elif kind == "redirect":
        payload = {"code": 302, "message": f"moved to {fault.location}"}
        await _respond_json(send, 302, payload, location=fault.location)
