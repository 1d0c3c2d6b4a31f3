"""The outer ASGI layers: who may talk to the emulator at all, then a record of each request, answered normally
or through a fault.

The recording layer must sit outside Starlette's own middleware so that the `send` it sees is the
server's, which is what lets the "reset" fault reach the socket.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atlas_mcp.emulator.faults import apply_fault
from atlas_mcp.emulator.state import EmulatorState, RecordedRequest

logger = logging.getLogger("atlas_mcp.emulator")

CONTROL_PREFIX = "/_emulator"


class RecordAndFaultMiddleware:
    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        declared = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else 0
        record = RecordedRequest(
            method=method,
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body_size=declared,
            at=time.monotonic(),
            peer=":".join(str(part) for part in scope.get("client") or ()),
        )
        position = self.state.record_request(record)
        received = 0
        status = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # Faults see the server's own `send` (for "reset"); the bound method must not be wrapped.
        fault = self.state.take_fault(method, path)
        try:
            if fault is None:
                await self.app(scope, counting_receive, status_send)
            elif fault.kind == "reset":
                await apply_fault(fault, self.app, scope, counting_receive, send)
            else:
                await apply_fault(fault, self.app, scope, counting_receive, status_send)
        finally:
            if received > declared:
                self.state.update_body_size(position, record, received)
            logger.debug(
                "%s %s -> %s%s (%.1f ms)",
                method,
                path,
                status or "no response",
                f" [fault {fault.kind}]" if fault else "",
                (time.monotonic() - record.at) * 1000,
            )


class LoopbackOnly:
    """Only this machine's own names, on the emulator's own port, and JSON for the controls.

    The emulator keeps every prompt and output in its history and takes faults from ``/_emulator``: a page that
    DNS-rebinds its name to 127.0.0.1 must not read the one or arm the other, and a page on another local port must
    not post to it. So the Host must be a loopback name or address (or the very address the connection came in on,
    which a rebinding name never is) with the port the connection came in on; a browser's Origin must be one of
    those too; and a control route that changes something takes only ``application/json``, which no cross-origin
    form or text/plain POST can send without the browser asking first.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        default = 443 if scope.get("scheme") == "https" else 80
        local = scope.get("server") or ("", None)
        server = (str(local[0]).lower(), local[1] or default)  # in-process (no socket), the port may be None
        refusal = None
        if not _own_address(headers.get("host"), server):
            refusal = 421, "the emulator answers loopback names on its own port only (Host)"
        elif "origin" in headers and not _own_origin(headers["origin"], server):
            refusal = 403, "the emulator answers pages of its own origin only (Origin)"
        elif _is_control(scope["path"]) and scope["method"] in ("POST", "PUT"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                refusal = 415, "the emulator's control routes take application/json only"
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        logger.warning("refused %s %s: %s", scope["method"], scope["path"], message)
        await JSONResponse({"code": status, "message": message}, status_code=status)(scope, receive, send)


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _own_address(host: str | None, server: tuple[str, int]) -> bool:
    """``host`` (a Host header, or an Origin's host) names this machine and the port the request came in on."""
    if not host:
        return False
    name, port = _split(host.lower())
    local, local_port = server
    if port is None:
        port = 80 if local_port == 80 else 443 if local_port == 443 else -1  # a default port goes unwritten
    if port != local_port:
        return False
    if name in ("localhost", local.strip("[]")):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _own_origin(origin: str, server: tuple[str, int]) -> bool:
    scheme, separator, host = origin.partition("://")
    return separator == "://" and scheme.lower() == "http" and _own_address(host, server)


def _split(host: str) -> tuple[str, int | None]:
    """``name[:port]`` or ``[v6][:port]``; a port that is not all digits makes no address at all."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None if not rest else "x"
    elif ":" in host:
        name, _, port = host.partition(":")
    else:
        name, port = host, None
    if port is None:
        return name, None
    if not (port.isascii() and port.isdigit() and len(port) <= 5):
        return "", -1
    return name, int(port)
