"""The outermost ASGI layer: records each request, then answers it normally or through a fault.

It must sit outside Starlette's own middleware so that the `send` it sees is the
server's, which is what lets the "reset" fault reach the socket.
"""

from __future__ import annotations

import logging
import time

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
