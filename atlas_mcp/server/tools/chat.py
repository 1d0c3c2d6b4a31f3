"""The chat tool: one turn with one of Atlas's LLMs, streamed, bounded, and held to the spending rules.

Money: a chat answer is paid per token, so its price is only known afterwards. Before sending, its worst case
is worked out from the catalogue's per-token prices: every byte of the messages counted as a prompt token (a
token is never shorter than a byte) plus ``max_tokens`` of answer. That worst case is what spend safety sees:
it must fit the budget (it is reserved in the ledger, then corrected to the real usage once Atlas reports it),
and above the confirmation threshold the call is refused with a way to bring it under, because a chat is
small and quick and cannot stop to ask. A model without per-token prices is treated like an unpriced
generation. The POST is never retried.
"""

import logging
import time
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from atlas_mcp.atlas import ChatAnswer, ChatChunk, ModelEntry
from atlas_mcp.config import Settings
from atlas_mcp.core.shown import Shown
from atlas_mcp.errors import (
    AtlasMCPError,
    InputError,
    SchemaUnavailableError,
    SpendRefusedError,
)
from atlas_mcp.server import icons
from atlas_mcp.server.appstate import AppState
from atlas_mcp.server.clients import wait_words
from atlas_mcp.server.shelf import ToolShelf
from atlas_mcp.server.toolkit import (
    GENERATING,
    LONG_RESULT,
    MODEL_ID,
    as_tool_errors,
    state_of,
    wait_bound_for,
)
from atlas_mcp.spend.policy import SpendReport, dollars

__all__ = ["ChatMessage", "ChatResult", "ask", "chat_body", "register_chat", "worst_case"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 1024
_PROGRESS_EVERY = 0.25  # seconds between progress notifications while tokens stream in
_CHAT_PROTOCOL = "chat/completions"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


class ChatUsageResult(Shown):
    prompt_tokens: int
    completion_tokens: int


class ChatResult(Shown):
    """One chat answer."""

    model: str
    text: str = Field(description="The model's answer (so far, when partial).")
    finish_reason: str | None = Field(
        description="Why it ended: stop, length (max_tokens reached), or when partial: timeout (the wait bound), "
        "connection_lost, too_large."
    )
    partial: bool = Field(description="True when the answer stopped before the model finished it.")
    usage: ChatUsageResult | None = Field(default=None, description="Tokens, as Atlas counted them (when it said).")
    price_usd: float | None = Field(
        default=None, description="What the answer cost at the catalogue's per-token prices, when usage is known."
    )
    waited_seconds: float
    spend: SpendReport | None = None


def worst_case(entry: ModelEntry, messages: list[ChatMessage], max_tokens: int) -> float | None:
    """The most this chat can cost at the catalogue's prices, or None when the catalogue gives no per-token price."""
    price = entry.price
    if price is None or price.input_price is None or price.output_price is None:
        return None
    prompt_bytes = sum(len(message.content.encode()) + len(message.role) for message in messages)
    return (prompt_bytes * price.input_price + max_tokens * price.output_price) / 1_000_000


def _price(entry: ModelEntry, answer: ChatAnswer) -> float | None:
    price = entry.price
    if answer.usage is None or price is None or price.input_price is None or price.output_price is None:
        return None
    usage = answer.usage
    return (usage.prompt_tokens * price.input_price + usage.completion_tokens * price.output_price) / 1_000_000


async def _chat_model(state: AppState, model: str) -> ModelEntry:
    """The model's catalogue entry, if it can chat; else an error that points at list_models. Nothing is sent."""
    try:
        models = await state.catalog.models()
    except AtlasMCPError as exc:
        raise SchemaUnavailableError(
            f"The Atlas model catalogue could not be read ({exc}), so {model} cannot be checked before paying. "
            "Nothing was sent; try again in a minute."
        ) from exc
    entry = next((candidate for candidate in models if candidate.model == model), None)
    if entry is None:
        raise InputError(
            f"Atlas has no model {model!r}. Call list_models with type=Text to see the chat models. Nothing was sent."
        )
    if (entry.type or "").lower() != "text":
        raise InputError(
            f"{model} is {'an' if (entry.type or '')[:1] in 'AEIOU' else 'a'} {entry.type or 'unknown-type'} model; "
            "chat takes Text models (call list_models with type=Text). Nothing was sent."
        )
    protocols = entry.supported_protocols
    if protocols and not any(_CHAT_PROTOCOL in protocol for protocol in protocols):
        raise InputError(
            f"{model} does not speak chat completions (it lists {', '.join(protocols)}). Pick another Text model "
            "with list_models. Nothing was sent."
        )
    return entry


def _scrubbed(text: str, state: AppState) -> str:
    """The answer with the caller's key taken out: a model that echoes its prompt must not hand the key back."""
    for secret in state.secrets:
        text = text.replace(secret, "[redacted]")
    return text


def _text(result: ChatResult) -> str:
    facts = [f"finish: {result.finish_reason or 'unknown'}"]
    if result.usage is not None:
        facts.append(f"{result.usage.prompt_tokens} prompt + {result.usage.completion_tokens} completion tokens")
    facts.append(dollars(result.price_usd) if result.price_usd is not None else "price unknown")
    lines = []
    if result.partial:
        why = {
            "timeout": f"the wait bound ({result.waited_seconds:.0f} s) passed",
            "connection_lost": "the connection to Atlas broke off",
            "too_large": "the answer grew past the size this server reads",
        }.get(result.finish_reason or "", result.finish_reason or "it stopped")
        lines.append(f"[PARTIAL answer: {why} before the model finished. It may be billed; do not simply repeat it.]")
    lines += [result.text, "", f"({result.model}; {'; '.join(facts)})"]
    if result.spend is not None:
        lines.append(result.spend.text())
    return "\n".join(lines)


def register_chat(shelf: ToolShelf, settings: Settings) -> None:
    """Register chat; its wait bound is the generate tools' (ATLASCLOUD_WAIT_SECONDS)."""
    bound = wait_words(settings)

    @shelf.tool(
        title="Chat with an Atlas LLM",
        meta=LONG_RESULT,
        icons=icons.SERVER,
        description=(
            "Ask one of Atlas Cloud's LLMs (a Text model: see list_models type=Text) and get its answer. COSTS MONEY "
            "per token (the result gives tokens and price). messages is the conversation (system/user/assistant); "
            f"max_tokens caps the answer (and its price). Streams with progress and waits up to {bound}: an "
            "answer not finished by then is returned as it stands, marked partial."
        ),
        annotations=GENERATING,
    )
    async def chat(
        model: Annotated[str, Field(max_length=200, pattern=MODEL_ID, description="A Text model id (list_models).")],
        messages: Annotated[
            list[ChatMessage], Field(min_length=1, max_length=500, description="The conversation, oldest first.")
        ],
        ctx: Context,
        max_tokens: Annotated[
            int, Field(ge=1, le=65536, description="Longest answer, in tokens (also bounds the price).")
        ] = DEFAULT_MAX_TOKENS,
        temperature: Annotated[float | None, Field(ge=0, le=2, description="Sampling temperature.")] = None,
        top_p: Annotated[float | None, Field(ge=0, le=1, description="Nucleus sampling.")] = None,
        response_format: Annotated[
            Literal["text", "json"], Field(description="json: the answer is one JSON object (say so in the prompt).")
        ] = "text",
        max_wait_seconds: Annotated[
            float | None, Field(ge=1, le=600, description=f"Wait at most this long (capped at {bound}).")
        ] = None,
    ) -> Annotated[CallToolResult, ChatResult]:
        allowed = wait_bound_for(ctx)  # by who is calling (ATLASCLOUD_WAIT_SECONDS when set)
        limit = max(1.0, min(allowed, allowed if max_wait_seconds is None else max_wait_seconds))
        body = chat_body(model, messages, max_tokens, temperature, top_p, response_format)
        with as_tool_errors():
            return await ask(ctx, state_of(ctx), body, messages, max_tokens, limit=limit)


def chat_body(
    model: str,
    messages: list[ChatMessage],
    max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    response_format: Literal["text", "json"],
) -> dict[str, object]:
    """The chat/completions request, streamed so that progress can be shown and a partial answer kept."""
    body: dict[str, object] = {
        "model": model,
        "messages": [message.model_dump() for message in messages],
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if temperature is not None:
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    if response_format == "json":
        body["response_format"] = {"type": "json_object"}
    return body


def _refuse_above_threshold(state: AppState, worst: float | None, max_tokens: int) -> None:
    if not state.spend.needs_confirmation(worst):
        return
    shown = dollars(worst) if worst is not None else "an unknown price (the catalogue lists none)"
    threshold = state.settings.confirm_above_usd or 0
    raise SpendRefusedError(
        f"Not sent, nothing was spent: this chat may cost up to {shown} (max_tokens={max_tokens} at the "
        f"catalogue's prices), above the {dollars(threshold)} that needs the user's go-ahead "
        "(ATLASCLOUD_CONFIRM_ABOVE_USD), and chat cannot stop to ask. Lower max_tokens or shorten the "
        "messages to bring it under, or ask the user to raise ATLASCLOUD_CONFIRM_ABOVE_USD."
    )


async def ask(
    ctx: Context,
    state: AppState,
    body: dict[str, object],
    messages: list[ChatMessage],
    max_tokens: int,
    *,
    limit: float,
) -> CallToolResult:
    """Check the model and the price, hold the worst case, stream the answer with progress, settle to what it
    cost: the same hold and settle as a generation, and the same "may it be billed?" from the error tree."""
    model = str(body["model"])
    entry = await _chat_model(state, model)
    state.atlas.require_key()
    worst = worst_case(entry, messages, max_tokens)
    _refuse_above_threshold(state, worst, max_tokens)
    guard = state.spend
    payer = await guard.payer(state.payer_key)
    held = await guard.hold(payer, worst, what="this chat may cost up to")
    started = time.monotonic()
    pieces = 0
    reported = 0.0

    async def on_chunk(chunk: ChatChunk, so_far: str) -> None:
        nonlocal pieces, reported
        pieces += 1 if chunk.text else 0
        now = time.monotonic()
        if pieces == 1 or chunk.finish_reason or now - reported >= _PROGRESS_EVERY:
            reported = now
            await ctx.report_progress(
                min(pieces, max_tokens), max_tokens, f"{model}: {pieces} tokens, {len(so_far)} characters"
            )

    await ctx.report_progress(0, max_tokens, f"Asking {model}" + (f" (at most {dollars(worst)})" if worst else ""))
    answer = await guard.on_hold(payer, held, lambda: state.atlas.chat(body, timeout=limit, on_chunk=on_chunk))
    price = _price(entry, answer)
    if price is not None:
        await guard.release_hold(payer, held, price)
    usage = answer.usage
    result = ChatResult(
        model=answer.model or model,
        text=_scrubbed(answer.text, state),
        finish_reason=answer.finish_reason,
        partial=answer.partial,
        usage=ChatUsageResult(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
        if usage is not None
        else None,
        price_usd=round(price, 9) if price is not None else None,
        waited_seconds=round(time.monotonic() - started, 3),
        spend=await guard.report_after_paying(payer),
    )
    logger.info("chat with %s: %s, %d pieces", model, answer.finish_reason, pieces)
    return CallToolResult(content=[TextContent(text=_text(result))], structured_content=result.model_dump(mode="json"))
