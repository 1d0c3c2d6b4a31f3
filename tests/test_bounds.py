"""The Atlas client's own bounds: a whole call within twice the timeout, pauses that fit it, uploads left to
the link's pace, the billable POST's honest wording, and downloads that check the socket they really got."""

from __future__ import annotations

import io
import time
from typing import Any

import anyio
import httpx
import pytest

from atlas_mcp.atlas import AtlasClient
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.errors import BadResponseError, InputError, RateLimitedError, UpstreamUnavailableError

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/flux-schnell"
POLL = "/api/v1/model/prediction/"


async def test_a_dripping_answer_is_cut_at_twice_the_timeout_retries_included(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=POLL, kind="trickle", size=64 * 1024, seconds=0.1, times=None))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, timeout=0.3) as atlas:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailableError, match="did not answer in time"):
            await atlas.get_prediction("a" * 32)
    assert 0.6 <= time.monotonic() - started < 1.0


async def test_a_pause_that_would_outlast_the_call_is_not_taken(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=POLL, kind="rate_limit", retry_after=5, times=None))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, timeout=1) as atlas:
        started = time.monotonic()
        with pytest.raises(RateLimitedError, match="Try again in 5 s"):
            await atlas.get_prediction("a" * 32)
    assert time.monotonic() - started < 0.5
    assert len([r for r in emulator.state.requests if r.path.startswith(POLL)]) == 1


class _SlowFile(io.RawIOBase):
    """A file whose reads take a while, like a network drive: the upload takes longer than 2 x the timeout."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        time.sleep(0.1)
        return self._data.read(min(size, 4096))


async def test_an_upload_may_take_as_long_as_the_link_needs(emulator: Emulator) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(4096 * 9)
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, timeout=0.3) as atlas:
        started = time.monotonic()
        uploaded = await atlas.upload(_SlowFile(data), filename="slow.png", content_type="image/png", size=len(data))  # type: ignore[arg-type]
    assert time.monotonic() - started > 2 * 0.3
    assert uploaded.size == len(data)


async def test_a_submit_that_never_connected_says_nothing_was_sent() -> None:
    with anyio.fail_after(10):
        async with AtlasClient(api_key=TEST_KEY, base_url="http://127.0.0.1:9", timeout=1) as atlas:
            with pytest.raises(UpstreamUnavailableError, match="Nothing was sent") as caught:
                await atlas.submit(FLUX, {"prompt": "x"})
    assert "paid twice" not in str(caught.value)


async def test_a_model_nested_in_input_is_refused(emulator: Emulator) -> None:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url) as atlas:
        with pytest.raises(InputError, match="'model' cannot be set"):
            await atlas.submit(FLUX, {"prompt": "x", "input": {"model": "someone/expensive-model"}})
    assert emulator.state.requests == []


class _Stream(httpx.AsyncByteStream):
    async def __aiter__(self) -> Any:
        yield b"\x89PNG\r\n\x1a\n"


class _PrivatePeer:
    """What httpcore's network stream says about the socket: here, that it reached a private address."""

    def get_extra_info(self, info: str) -> Any:
        return ("10.0.0.7", 443) if info == "server_addr" else None


async def test_a_download_whose_socket_is_private_is_refused_though_its_name_was_public() -> None:
    """DNS rebinding: the name passed the check when resolved, then the connection went elsewhere."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=_Stream(), extensions={"network_stream": _PrivatePeer()})

    transport = httpx.MockTransport(answer)
    async with AtlasClient(api_key=TEST_KEY, base_url="https://api.atlascloud.ai", transport=transport) as atlas:
        with pytest.raises(BadResponseError, match="private or local address"):
            await atlas.download("https://93.184.216.34/out/0.png", max_bytes=1024)  # public, so checked on the socket
    assert len(seen) == 1 and "authorization" not in seen[0].headers  # the key only ever goes to Atlas's origin


async def test_failure_reasons_in_the_history_are_redacted(emulator: Emulator) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, fail=f"worker rejected Authorization: Bearer {TEST_KEY}"))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url) as atlas:
        submitted = await atlas.submit(FLUX, {"prompt": "x"})
        [item] = (await atlas.list_predictions(prediction_id=submitted.id)).items
    assert item.result is not None and item.result.error == "worker rejected Authorization: Bearer [redacted]"


@pytest.mark.parametrize("starts_at", [280, 286, 292])
async def test_a_key_echoed_in_an_error_page_is_redacted_before_any_cut(emulator: Emulator, starts_at: int) -> None:
    """An HTML error page is kept as an excerpt; the key must go before the excerpt is cut, wherever it falls
    (the excerpt once ended at byte 300, so a key across that cut lost its tail and kept its first characters)."""
    head = "<html><body>echoed: "
    page = head + "x" * (starts_at - len(head)) + TEST_KEY + " y" * 3000 + "</body></html>"
    emulator.state.add_fault(Fault(path="/api/v1/model/generateImage", kind="html", status=502, body=page))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url) as atlas:
        with pytest.raises(UpstreamUnavailableError) as raised:
            await atlas.submit(FLUX, {"prompt": "x"})
    message = str(raised.value)
    assert not any(TEST_KEY[i : i + 8] in message for i in range(len(TEST_KEY) - 7)), message


async def test_a_schema_host_that_fails_is_not_blamed_on_the_base_url() -> None:
    """Schemas may live on another host than Atlas's API; when that host fails, ATLASCLOUD_BASE_URL is fine."""

    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    transport = httpx.MockTransport(answer)
    async with AtlasClient(api_key=TEST_KEY, base_url="https://api.atlascloud.ai", transport=transport) as atlas:
        atlas.retry = type(atlas.retry)(attempts=1)
        with pytest.raises(UpstreamUnavailableError) as raised:
            await atlas.get_schema("https://93.184.216.34/schemas/flux.json")  # a public literal: no DNS lookup
        with pytest.raises(UpstreamUnavailableError) as own:
            await atlas.get_schema("https://api.atlascloud.ai/schemas/flux.json")
    assert "93.184.216.34" in str(raised.value) and "ATLASCLOUD_BASE_URL" not in str(raised.value)
    assert "ATLASCLOUD_BASE_URL" in str(own.value)  # Atlas's own origin: then it may well be the setting
