"""Serving MCP over stdio, with an answer for every line a client writes.

The SDK's stdio transport hands a line it cannot parse to the server as an exception, and the server drops it
(a DEBUG log line): the caller that sent it waits forever. That happened to a lone surrogate, nesting past
the parser's depth, integers of more than 4 300 digits, a missing ``"jsonrpc"``, string ``params``, garbage and
batches. So the server reads stdin itself, through :class:`ScreenedLines`, and hands the SDK only lines it will
take; every other line is answered here, as JSON-RPC says: ``-32700`` when it is not JSON the server can read,
``-32600`` when it is JSON but not a message, with the request's id wherever it can be read (else ``null``).
The SDK also takes a request whose id is ``null``, an object, a list, a boolean or a fraction for a notification
(it drops the id) and so never answers it; MCP says an id is a string or an integer, so such a line is answered
``-32600`` here, with id ``null``. A line nested too deep for any parser still has its top-level id read, by
:func:`_top_level_id`, so that its caller's request is the one answered.

Answers go out through the SDK's writer, never beside it. Lines are read and answers written on the event loop
where the descriptors allow it (:mod:`atlas_mcp.server.wire`, which then points fd 1 at stderr while serving, as the
SDK does), else through the SDK's worker threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any, cast

import anyio
import mcp_types as types
import pydantic_core
from anyio.abc import ObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from atlas_mcp.server import wire

__all__ = ["ScreenedLines", "answer_for", "serve_stdio"]

logger = logging.getLogger(__name__)

_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600


def answer_for(line: str) -> types.JSONRPCError | None:
    """None when the SDK will take ``line``; else the error that answers it."""
    if not line.strip():
        return None  # blank lines are skipped by everyone
    if _plainly_taken(line):
        return None
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError:
        pass
    else:
        if isinstance(message, types.JSONRPCNotification) and _has_id(line):
            return _error(_INVALID_REQUEST, _BAD_ID, None)
        return None
    try:
        pydantic_core.from_json(line)
    except ValueError:
        return _error(_PARSE_ERROR, "Parse error: the line is not JSON this server can read", _lenient_id(line))
    parsed = _lenient(line)
    request_id = _id_of(parsed)
    if isinstance(parsed, list):
        return _error(_INVALID_REQUEST, "Invalid Request: batches are not supported; send one message a line", None)
    return _error(_INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message (jsonrpc, method, params)", request_id)


def _plainly_taken(line: str) -> bool:
    """Whether ``line`` is, at a glance, a message the SDK takes as it is: a request or notification with the usual
    members (nearly every line). Read once by the fast parser, without trying it against every message model;
    anything less plain is judged by the SDK's own adapter, below."""
    try:
        parsed = pydantic_core.from_json(line)
    except ValueError:
        return False
    if not isinstance(parsed, dict) or parsed.get("jsonrpc") != "2.0" or not isinstance(parsed.get("method"), str):
        return False
    if not isinstance(parsed.get("params"), dict | None) or not set(parsed) <= _PLAIN_MEMBERS:
        return False
    if "id" not in parsed:
        return True  # a notification
    return isinstance(parsed["id"], str) or type(parsed["id"]) is int  # not a bool


_PLAIN_MEMBERS = frozenset({"jsonrpc", "id", "method", "params"})

_BAD_ID = "Invalid Request: an id must be a string or an integer (not null, a fraction, a boolean, an object or a list)"


def _has_id(line: str) -> bool:
    """Whether a line the SDK read as a notification has an ``id`` member all the same (which the SDK dropped)."""
    try:
        parsed = pydantic_core.from_json(line)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "id" in parsed


def _error(code: int, message: str, request_id: int | str | None) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))


def _lenient(line: str) -> Any:
    """The line read by a more forgiving parser (Python's own, integers of any length), or None."""
    try:
        return json.loads(line, parse_int=_any_int)
    except (ValueError, RecursionError):
        return None


def _any_int(digits: str) -> int | None:
    """An integer, or None for one too long to convert (4 300 digits is Python's limit): it cannot be an id."""
    return int(digits) if len(digits) <= 18 else None


def _lenient_id(line: str) -> int | str | None:
    parsed = _lenient(line)
    return _id_of(parsed) if parsed is not None else _top_level_id(line)


_SCAN_LIMIT = 1 << 20  # an id is near the start of any real message; a scan of megabytes would be for nothing


def _top_level_id(line: str) -> int | str | None:
    """The ``"id"`` member of a line's outermost object, found without parsing the rest: for a line that is
    too deep (or too broken) for a parser, whose sender still waits for an answer to its id."""
    depth, in_string, escaped, start = 0, False, False, -1
    for index, char in enumerate(line[:_SCAN_LIMIT]):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 1 and line[start : index + 1] == '"id"' and _is_key(line, start, index + 1):
                    return _value_after(line, index + 1)
        elif char == '"':
            in_string, start = True, index
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return None


def _is_key(line: str, start: int, end: int) -> bool:
    """A string at ``line[start:end]`` is a member name when a ``:`` follows it and ``{`` or ``,`` precedes it."""
    before = line[:start].rstrip()
    return before.endswith(("{", ",")) and line[end:].lstrip().startswith(":")


def _value_after(line: str, end: int) -> int | str | None:
    rest = line[end:].lstrip()[1:].lstrip()  # past the colon
    try:
        value, _ = json.JSONDecoder(parse_int=_any_int).raw_decode(rest[:1024])
    except (ValueError, RecursionError):
        return None
    return _id_of({"id": value})


def _id_of(parsed: Any) -> int | str | None:
    if not isinstance(parsed, dict):
        return None
    request_id = parsed.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return None
    if isinstance(request_id, str) and not request_id.isprintable():
        return None
    return request_id


class ScreenedLines:
    """stdin for the SDK's transport: the lines it will take pass through; the others are answered here."""

    def __init__(self, source: AsyncIterator[str]) -> None:
        self._source = source
        self._answers: ObjectSendStream[SessionMessage] | None = None
        self._ready = anyio.Event()

    def answer_through(self, stream: ObjectSendStream[SessionMessage]) -> None:
        """Where answers go: the transport's own writer (known once it runs)."""
        self._answers = stream
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self._source:
            answer = answer_for(line)
            if answer is None:
                yield line
                continue
            logger.warning("answered a line that is not a JSON-RPC message with %d", answer.error.code)
            await self._ready.wait()
            assert self._answers is not None
            try:
                await self._answers.send(SessionMessage(answer))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return


class _Unowned(TextIOWrapper):
    """A text layer over stdin's buffer that never closes it (as the SDK's own reader does not)."""

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.detach()


async def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve ``server`` over this process's stdin and stdout until stdin closes: on the event loop where the
    descriptors allow it (:mod:`atlas_mcp.server.wire`), else through the SDK's worker threads."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:  # pragma: no cover - an SDK without the seam: serve as it does, unanswered lines and all
        await server.run_stdio_async()
        return
    with wire.opened_stdin() as wire_lines, wire.claimed_stdout() as wire_writer:
        source = wire_lines or anyio.wrap_file(_Unowned(sys.stdin.buffer, encoding="utf-8", errors="replace"))
        lines = ScreenedLines(cast(AsyncIterator[str], source))
        async with stdio_server(stdin=cast(Any, lines), stdout=cast(Any, wire_writer)) as (read_stream, write_stream):
            lines.answer_through(write_stream)
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
