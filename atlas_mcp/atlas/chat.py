"""Chat with an Atlas LLM (``POST /v1/chat/completions``): one OpenAI-compatible completion, streamed as
server-sent events when Atlas streams it, read whole when it does not, bounded by the caller's timeout. Billable:
sent once, never retried; what arrived before a break or the bound is kept and marked partial.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from atlas_mcp.atlas.models import ChatAnswer, ChatChunk
from atlas_mcp.atlas.transport import MAYBE_SENT, Answer, Transport, read_answer
from atlas_mcp.errors import BadResponseError, UpstreamUnavailableError

if TYPE_CHECKING:
    import httpx

__all__ = ["CHAT_PATH", "Chat", "OnChunk"]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
CHAT_BILLED = "The model may have started answering, and Atlas may bill it."
OnChunk = Callable[[ChatChunk, str], Awaitable[None]]
"""Called for every streamed piece of a chat answer, with the piece and the whole text so far."""


class Chat(Transport):
    """One chat completion at a time, streamed."""

    async def chat(self, body: Mapping[str, Any], *, timeout: float, on_chunk: OnChunk | None = None) -> ChatAnswer:
        """One OpenAI-compatible chat completion (``POST /v1/chat/completions``). Billable: sent once, never retried.

        With ``"stream": true`` in ``body`` the answer is read as it is streamed (server-sent events), and
        ``on_chunk`` hears every piece; an answer that comes whole (a gateway that does not stream) is read too.
        Bounded by ``timeout``: what arrived by then is returned with ``partial`` set and ``finish_reason``
        "timeout"; a stream that breaks off after some text comes back the same way ("connection_lost").
        """
        self.require_key()
        text: list[str] = []
        final = ChatAnswer(text="", partial=True, finish_reason="timeout")
        with anyio.move_on_after(timeout):
            final = await self._chat(body, text, on_chunk)
        if final.partial:
            final = final.model_copy(update={"text": "".join(text)})
        return final

    async def _chat(self, body: Mapping[str, Any], text: list[str], on_chunk: OnChunk | None) -> ChatAnswer:
        import httpx

        request = self.http.build_request(
            "POST", CHAT_PATH, json=dict(body), headers={"Accept": "text/event-stream, application/json"}
        )
        try:
            response = await self.send_streaming(request)
        except httpx.TransportError as exc:
            raise self._chat_network_error(exc) from exc
        try:
            streamed = response.headers.get("content-type", "").startswith("text/event-stream")
            if not streamed or response.status_code >= 300:
                answer = await self._whole(response, request)
                try:
                    self.raise_for_error(answer, idempotent=False)
                except UpstreamUnavailableError as exc:
                    raise UpstreamUnavailableError(
                        str(exc).replace(MAYBE_SENT, CHAT_BILLED), status=exc.status, maybe_sent=True
                    ).about("answer_maybe_billed") from exc
                whole = self.parse(ChatChunk, answer.body, "chat answer")
                text.append(whole.text)
                if on_chunk is not None:
                    await on_chunk(whole, whole.text)
                return ChatAnswer(
                    text=whole.text, finish_reason=whole.finish_reason, model=whole.model, usage=whole.usage
                )
            return await self._read_stream(response, text, on_chunk)
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _read_stream(self, response: httpx.Response, text: list[str], on_chunk: OnChunk | None) -> ChatAnswer:
        """Server-sent events: ``data: {chunk}`` lines until ``data: [DONE]``; comments and other fields skipped."""
        import httpx

        finish: str | None = None
        model: str | None = None
        usage = None
        size = 0
        try:
            async for line in response.aiter_lines():
                size += len(line)
                if size > self.max_body:
                    return ChatAnswer(text="", partial=True, finish_reason="too_large", model=model, usage=usage)
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    raw = json.loads(data)
                except ValueError:
                    logger.debug("skipping a chat stream line that is not JSON")
                    continue
                if isinstance(raw, dict) and raw.get("error") is not None:
                    said = self.upstream_text(raw) or "no reason given"
                    raise UpstreamUnavailableError(
                        f"Atlas broke off the chat answer: {said}. {CHAT_BILLED}", maybe_sent=True
                    ).about("answer_maybe_billed")
                chunk = self.parse(ChatChunk, raw, "chat stream piece")
                finish = chunk.finish_reason or finish
                model = chunk.model or model
                usage = chunk.usage or usage
                if chunk.text:
                    text.append(chunk.text)
                if on_chunk is not None and (chunk.text or chunk.finish_reason):
                    await on_chunk(chunk, "".join(text))
        except httpx.TransportError as exc:
            if not text:
                raise self._chat_network_error(exc) from exc
            logger.info("the chat stream broke off after %d pieces (%s)", len(text), type(exc).__name__)
            return ChatAnswer(text="", partial=True, finish_reason="connection_lost", model=model, usage=usage)
        if finish is None:  # the stream ended without the model saying it was done
            return ChatAnswer(text="", partial=True, finish_reason="connection_lost", model=model, usage=usage)
        return ChatAnswer(text="".join(text), finish_reason=finish, model=model, usage=usage)

    async def _whole(self, response: httpx.Response, request: httpx.Request) -> Answer:
        """A response that is not a stream, read whole (size-capped) and parsed as :meth:`Transport.send` does."""
        raw = bytearray()
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > self.max_body:
                raise BadResponseError(
                    f"Atlas's answer to {request.method} {request.url.path} exceeded {self.max_body // 1024} KiB; "
                    f"refused to read further. {CHAT_BILLED}"
                ).about("answer_maybe_billed")
        return read_answer(response, raw)

    def _chat_network_error(self, exc: Exception) -> UpstreamUnavailableError:
        error = self.network_error(exc, idempotent=False)
        if not error.maybe_sent:
            return error
        changed = str(error).replace(MAYBE_SENT, CHAT_BILLED)
        return UpstreamUnavailableError(changed, maybe_sent=True).about("answer_maybe_billed")
