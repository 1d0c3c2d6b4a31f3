"""``POST /v1/chat/completions``: Atlas's OpenAI-compatible LLM API, for the catalogue's Text models.

Answers are deterministic: the model quotes the last user message back (``You said: "..."``), one token per
word, as JSON when ``response_format`` asks for it. Streamed (``"stream": true``) as server-sent events in
OpenAI's chunk format, ending ``data: [DONE]``, with ``EmulatorConfig.chat_token_seconds`` between pieces;
else one ``chat.completion`` (``answers/chat.completion.json``). Each answer is billed at the catalogue's
per-token prices, counted in the usage and cost reports, and taken from the balance.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from atlas_mcp.emulator import wire
from atlas_mcp.emulator.account import Charge
from atlas_mcp.emulator.catalogue import ModelSpec, find_model
from atlas_mcp.emulator.fixtures import load
from atlas_mcp.emulator.state import EmulatorState

__all__ = ["chat_completion"]

_ROLES = ("system", "user", "assistant")
_PIECE = re.compile(r"\S+\s*")
_PER_MESSAGE = 3  # tokens each message costs besides its words, as OpenAI-style counts go


class _Refused(Exception):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class _Request:
    model: ModelSpec
    messages: list[dict[str, str]]
    max_tokens: int | None
    as_json: bool
    stream: bool
    include_usage: bool


def _invalid(message: str, param: str | None = None) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return JSONResponse({"error": error}, status_code=400)


def _no_such_model(model_id: str, why: str) -> JSONResponse:
    answer = load("answers/chat.model-not-found.json")
    answer["body"]["error"]["message"] = f"The model `{model_id}` {why}."
    return JSONResponse(answer["body"], status_code=answer["status"])


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _Refused(f"{name} must be a number from {low:g} to {high:g}, got {value!r}", param=name)


def _parse(body: dict[str, Any], model: ModelSpec) -> _Request:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Refused("messages must be a non-empty list of {role, content}", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _Refused(f"messages[{index}].role must be one of {', '.join(_ROLES)}", param="messages")
        if not isinstance(message.get("content"), str):
            raise _Refused(f"messages[{index}].content must be a string", param="messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _Refused(f"max_tokens must be a positive integer, got {max_tokens!r}", param="max_tokens")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if response_format is not None and kind not in ("text", "json_object"):
        raise _Refused("response_format.type must be text or json_object", param="response_format")
    options = body.get("stream_options")
    return _Request(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        as_json=kind == "json_object",
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def _answer(request: _Request) -> tuple[list[str], str, int]:
    """The answer's pieces (one token each), its finish reason, and the prompt's tokens."""
    said = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
    reply = f'You said: "{said}"'
    text = json.dumps({"reply": reply}, ensure_ascii=False) if request.as_json else reply
    pieces = _PIECE.findall(text) or [text]
    finish = "stop"
    if request.max_tokens is not None and len(pieces) > request.max_tokens:
        pieces, finish = pieces[: request.max_tokens], "length"
    prompt = sum(len(_PIECE.findall(m["content"])) + _PER_MESSAGE for m in request.messages)
    return pieces, finish, prompt


def _cost(model: ModelSpec, prompt: int, completion: int) -> float:
    return (prompt * float(model.input_price or 0) + completion * float(model.output_price or 0)) / 1_000_000


async def chat_completion(state: EmulatorState, request: Request, key: str) -> Response:
    """Answer one chat request from the caller holding ``key`` (already authorised)."""
    try:
        body = await request.json()
    except ValueError as exc:
        return _invalid(f"request body must be JSON: {exc}")
    if not isinstance(body, dict):
        return _invalid("request body must be a JSON object")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return _invalid("model is required", "model")
    model = find_model(model_id)
    if model is None:
        return _no_such_model(model_id, "does not exist")
    if model.type != "Text":
        return _no_such_model(model_id, f"is a {model.type} model, not a chat model")
    try:
        parsed = _parse(body, model)
    except _Refused as exc:
        return _invalid(exc.message, exc.param)
    pieces, finish, prompt = _answer(parsed)
    cost = _cost(model, prompt, len(pieces))
    charge = Charge(
        at=time.time(),
        model=model.id,
        model_type="text",
        api_key=key,
        cost=cost,
        input_tokens=prompt,
        output_tokens=len(pieces),
    )
    if not state.bill(charge):
        return wire.insufficient_balance()
    usage = {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}
    ident = f"chatcmpl-{secrets.token_hex(16)}"
    if not parsed.stream:
        answer: dict[str, Any] = load("answers/chat.completion.json")["body"]
        answer |= {"id": ident, "created": int(time.time()), "model": model.id, "usage": usage}
        answer["choices"][0] |= {"message": {"role": "assistant", "content": "".join(pieces)}, "finish_reason": finish}
        return JSONResponse(answer)
    return StreamingResponse(
        _events(state, ident, model.id, pieces, finish, usage if parsed.include_usage else None),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _events(
    state: EmulatorState, ident: str, model: str, pieces: list[str], finish: str, usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], reason: str | None, **extra: Any) -> bytes:
        piece: dict[str, Any] = load("answers/chat.completion.chunk.json")["body"]
        piece |= {"id": ident, "created": created, "model": model, **extra}
        piece["choices"] = [{"index": 0, "delta": delta, "finish_reason": reason}] if delta or reason else []
        return f"data: {json.dumps(piece, ensure_ascii=False)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in pieces:
        pause = state.config.chat_token_seconds
        if pause > 0:
            await anyio.sleep(pause)
        yield chunk({"content": piece}, None)
    yield chunk({}, finish)
    if usage is not None:
        yield chunk({}, None, usage=usage)
    yield b"data: [DONE]\n\n"
