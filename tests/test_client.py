"""The Atlas client against the emulator, over real loopback HTTP: every endpoint, variant and failure mode."""

from __future__ import annotations

import io
import itertools
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from atlas_mcp.atlas import AtlasClient, PollPolicy, Prediction, RetryPolicy
from atlas_mcp.emulator import Emulator, EmulatorConfig, Fault, PredictionPlan
from atlas_mcp.errors import (
    AtlasMCPError,
    AuthenticationError,
    BadResponseError,
    InputError,
    InsufficientBalanceError,
    InvalidRequestError,
    NotFoundError,
    PredictionTimeoutError,
    RateLimitedError,
    UpstreamUnavailableError,
)

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
FLUX = "black-forest-labs/flux-schnell"
PREDICTION_PATH = "/api/v1/model/prediction/"
SUBMIT_PATH = "/api/v1/model/generateImage"


@pytest.fixture
async def atlas(emulator: Emulator) -> AsyncIterator[AtlasClient]:
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, retry=FAST_RETRY, timeout=5) as client:
        yield client


def requests_to(emulator: Emulator, path: str, method: str | None = None) -> list[object]:
    return [r for r in emulator.state.requests if r.path.startswith(path) and (method is None or r.method == method)]


async def test_submit_wait_and_outputs(atlas: AtlasClient, emulator: Emulator) -> None:
    submitted = await atlas.submit(FLUX, {"prompt": "a red fox", "size": "512*768", "seed": 7})
    assert submitted.phase == "running"
    polls: list[str] = []

    async def on_poll(prediction: Prediction, count: int) -> None:
        polls.append(prediction.status)

    done = await atlas.wait(submitted, timeout=10, on_poll=on_poll)
    assert done.phase == "succeeded"
    assert done.price == pytest.approx(0.003)
    assert done.predict_time is not None
    assert polls and polls[-1] == done.status
    assert done.outputs[0].url is not None
    data, content_type = await atlas.download(done.outputs[0].url, max_bytes=10 * 1024 * 1024)
    assert data.startswith(b"\x89PNG")
    assert content_type == "image/png"
    # PNG IHDR: width and height are the requested size
    assert int.from_bytes(data[16:20], "big") == 512
    assert int.from_bytes(data[20:24], "big") == 768
    first = emulator.state.requests[0]
    assert first.headers["user-agent"].startswith("atlascloud-mcp/")
    assert first.headers["authorization"] == f"Bearer {TEST_KEY}"


@pytest.mark.parametrize(("final_status", "outputs_key"), [("succeeded", "outputs"), ("success", "output")])
async def test_success_variants(atlas: AtlasClient, emulator: Emulator, final_status: str, outputs_key: str) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, final_status=final_status, outputs_key=outputs_key))
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    done = await atlas.wait(submitted, timeout=5)
    assert done.status == final_status
    assert len(done.outputs) == 1


async def test_unenveloped_answers_are_accepted(atlas: AtlasClient, emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=SUBMIT_PATH, kind="unenveloped"))
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    assert submitted.id


async def test_failed_prediction_answered_with_500_is_a_result_not_an_outage(
    atlas: AtlasClient, emulator: Emulator
) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=0, fail="NSFW content detected", failure_http_status=500))
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    before = len(requests_to(emulator, PREDICTION_PATH))
    failed = await atlas.get_prediction(submitted.id)
    assert failed.phase == "failed"
    assert failed.error == "NSFW content detected"
    assert len(requests_to(emulator, PREDICTION_PATH)) == before + 1  # not retried


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(path=SUBMIT_PATH, kind="status", status=503, times=None), UpstreamUnavailableError),
        (Fault(path=SUBMIT_PATH, kind="rate_limit", retry_after=0.05, times=None), RateLimitedError),
        (Fault(path=SUBMIT_PATH, kind="reset", times=None), UpstreamUnavailableError),
        (Fault(path=SUBMIT_PATH, kind="html", status=502, times=None), UpstreamUnavailableError),
        (Fault(path=SUBMIT_PATH, kind="malformed", times=None), BadResponseError),
    ],
    ids=["503", "429", "reset", "html", "malformed"],
)
async def test_the_billable_post_is_sent_exactly_once(
    atlas: AtlasClient, emulator: Emulator, fault: Fault, error: type[Exception]
) -> None:
    emulator.state.add_fault(fault)
    with pytest.raises(error):
        await atlas.submit(FLUX, {"prompt": "x"})
    assert len(requests_to(emulator, SUBMIT_PATH, "POST")) == 1


async def test_network_failure_on_submit_warns_it_may_have_gone_through(atlas: AtlasClient, emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=SUBMIT_PATH, kind="reset"))
    with pytest.raises(UpstreamUnavailableError, match="may still have reached Atlas"):
        await atlas.submit(FLUX, {"prompt": "x"})


async def test_a_submit_after_a_pause_takes_a_new_connection(atlas: AtlasClient, emulator: Emulator) -> None:
    """The emulator, like many servers, closes a connection idle for 5 s. A request sent on one that the server is
    closing at that moment fails, and for a billable submit that ends as "may have gone through". The client
    reuses an idle connection for at most 4 s, so a submit after a 4.5 s pause opens a new one."""
    for pause in (0.0, 0.2, 4.5):
        await anyio.sleep(pause)
        await atlas.submit(FLUX, {"prompt": f"after {pause} s"})
    peers = [record.peer for record in emulator.state.requests if record.path == SUBMIT_PATH]
    assert all(peers) and len(peers) == 3
    assert peers[0] == peers[1], "a connection idle for 0.2 s is reused"
    assert peers[2] != peers[1], "one idle for 4.5 s is not: the server may be closing it"


async def test_429_retry_after_is_honoured_on_gets(atlas: AtlasClient, emulator: Emulator) -> None:
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    emulator.state.add_fault(Fault(path=PREDICTION_PATH, kind="rate_limit", retry_after=0.6))
    await atlas.get_prediction(submitted.id)
    gets = requests_to(emulator, PREDICTION_PATH)
    assert len(gets) == 2
    assert gets[1].at - gets[0].at >= 0.6  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fault",
    [
        Fault(path=PREDICTION_PATH, kind="status", status=502, times=2),
        Fault(path=PREDICTION_PATH, kind="reset", times=2),
        Fault(path=PREDICTION_PATH, kind="html", status=503, times=2),
        Fault(path=PREDICTION_PATH, kind="envelope_error", times=2),
        Fault(path=PREDICTION_PATH, kind="rate_limit", times=2),
    ],
    ids=["5xx", "reset", "html", "envelope-error", "429-no-retry-after"],
)
async def test_gets_recover_from_a_burst(atlas: AtlasClient, emulator: Emulator, fault: Fault) -> None:
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    emulator.state.add_fault(fault)
    prediction = await atlas.get_prediction(submitted.id)
    assert prediction.id == submitted.id
    assert len(requests_to(emulator, PREDICTION_PATH)) == 3


async def test_gets_give_up_after_the_capped_retries(atlas: AtlasClient, emulator: Emulator) -> None:
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    emulator.state.add_fault(Fault(path=PREDICTION_PATH, kind="status", status=503, times=None))
    with pytest.raises(UpstreamUnavailableError, match="HTTP 503"):
        await atlas.get_prediction(submitted.id)
    assert len(requests_to(emulator, PREDICTION_PATH)) == FAST_RETRY.attempts


async def test_a_read_that_hangs_is_bounded_by_the_timeout(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=PREDICTION_PATH, kind="delay", seconds=3, times=None))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, retry=FAST_RETRY, timeout=0.3) as atlas:
        with anyio.fail_after(2.5), pytest.raises(UpstreamUnavailableError, match="did not answer in time"):
            await atlas.get_prediction("a" * 32)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("missing_fields", BadResponseError), ("malformed", BadResponseError)],
)
async def test_bodies_not_in_any_documented_form(
    atlas: AtlasClient, emulator: Emulator, kind: str, error: type[Exception]
) -> None:
    emulator.state.add_fault(Fault(path=PREDICTION_PATH, kind=kind))  # type: ignore[arg-type]
    with pytest.raises(error):
        await atlas.get_prediction("a" * 32)


async def test_oversized_bodies_are_not_read_whole(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path=PREDICTION_PATH, kind="huge_body", size=50 * 1024 * 1024))
    async with AtlasClient(
        api_key=TEST_KEY, base_url=emulator.url, retry=FAST_RETRY, max_body_bytes=1 << 20, max_prediction_bytes=2 << 20
    ) as atlas:
        with pytest.raises(BadResponseError, match="exceeded 2048 KiB"):
            await atlas.get_prediction("a" * 32)
        emulator.state.add_fault(Fault(path="/api/v1/models", kind="huge_body", size=50 * 1024 * 1024))
        with pytest.raises(BadResponseError, match="exceeded 1024 KiB"):
            await atlas.list_models()


@pytest.mark.parametrize("bad_id", ["x/../../history", "../models", "a b", "", "a" * 200, "%2e%2e", "id?x=1"])
async def test_traversal_shaped_ids_are_refused_before_any_request(
    atlas: AtlasClient, emulator: Emulator, bad_id: str
) -> None:
    with pytest.raises(InputError, match="not a prediction id"):
        await atlas.get_prediction(bad_id)
    assert emulator.state.requests == []


async def test_a_model_key_in_params_is_refused(atlas: AtlasClient, emulator: Emulator) -> None:
    with pytest.raises(InputError, match="'model' cannot be set"):
        await atlas.submit(FLUX, {"prompt": "x", "model": "someone/expensive-model"})
    assert emulator.state.requests == []


async def test_not_found_and_invalid_request(atlas: AtlasClient) -> None:
    with pytest.raises(NotFoundError):
        await atlas.get_prediction("0" * 32)
    with pytest.raises(InvalidRequestError, match="num_images"):
        await atlas.submit(FLUX, {"prompt": "x", "num_images": 9})


async def test_no_key_fails_before_sending(emulator: Emulator) -> None:
    async with AtlasClient(api_key=None, base_url=emulator.url) as atlas:
        with pytest.raises(AuthenticationError, match="ATLASCLOUD_API_KEY"):
            await atlas.submit(FLUX, {"prompt": "x"})
        models = await atlas.list_models()  # the catalogue is public
    assert any(m.model == FLUX for m in models)
    assert [r.path for r in emulator.state.requests] == ["/api/v1/models"]


async def test_wrong_key_and_empty_balance() -> None:
    config = EmulatorConfig(api_key="the-right-key", balance=0.0)
    with Emulator(config) as strict:
        async with AtlasClient(api_key=TEST_KEY, base_url=strict.url, retry=FAST_RETRY) as atlas:
            with pytest.raises(AuthenticationError, match="HTTP 401") as wrong:
                await atlas.submit(FLUX, {"prompt": "x"})
        async with AtlasClient(api_key="the-right-key", base_url=strict.url, retry=FAST_RETRY) as atlas:
            with pytest.raises(InsufficientBalanceError, match="Top up"):
                await atlas.submit(FLUX, {"prompt": "x"})
    assert TEST_KEY not in str(wrong.value)


async def test_wait_is_bounded_and_reports_the_last_state(atlas: AtlasClient, emulator: Emulator) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=30))
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    with anyio.fail_after(3), pytest.raises(PredictionTimeoutError) as timed_out:
        await atlas.wait(submitted, timeout=0.8)
    assert timed_out.value.prediction.id == submitted.id
    assert timed_out.value.prediction.phase == "running"
    # The client says what happened and carries the facts; the server words the next step in its tools' terms.
    assert "goes on running at Atlas" in str(timed_out.value) and "check_prediction" not in str(timed_out.value)
    assert (timed_out.value.situation, timed_out.value.prediction_id) == ("still_running", submitted.id)


async def test_cancelling_a_wait_stops_the_polling(atlas: AtlasClient, emulator: Emulator) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=30))
    submitted = await atlas.submit(FLUX, {"prompt": "x"})
    with anyio.move_on_after(0.7):
        await atlas.wait(submitted, timeout=20)
    polls = len(requests_to(emulator, PREDICTION_PATH))
    assert polls >= 1
    await anyio.sleep(1.0)
    assert len(requests_to(emulator, PREDICTION_PATH)) == polls


async def test_polling_backs_off(emulator: Emulator) -> None:
    emulator.state.plan_next(PredictionPlan(seconds=4))
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, poll=PollPolicy()) as atlas:
        submitted = await atlas.submit(FLUX, {"prompt": "x"})
        await atlas.wait(submitted, timeout=10)
    times = [r.at for r in requests_to(emulator, PREDICTION_PATH)]  # type: ignore[attr-defined]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < 0.5
    assert gaps[-1] > gaps[0]
    assert len(times) <= 25


async def test_history_pages_and_filters(atlas: AtlasClient, emulator: Emulator) -> None:
    emulator.state.config.prediction_seconds = 5  # all three still running while the pages are read
    ids = [(await atlas.submit(FLUX, {"prompt": f"p{i}"})).id for i in range(3)]
    first = await atlas.list_predictions(page=1, size=2, model=FLUX)
    second = await atlas.list_predictions(page=2, size=2, model=FLUX)
    assert first.total >= 3
    assert [item.id for item in first.items] == ids[::-1][:2]
    assert second.items[0].id == ids[0]
    assert first.items[0].request_body is not None and first.items[0].request_body["prompt"] == "p2"
    # Atlas's newer query form: state and modelPrefix (see tests/fixtures/atlas/requests/history.newer-form.json)
    running = await atlas.list_predictions(state="running", model_prefix="black-forest-labs/")
    assert [item.id for item in running.items][:3] == ids[::-1]
    assert "state=running" in emulator.state.requests[-1].query
    assert "modelPrefix=black-forest-labs%2F" in emulator.state.requests[-1].query
    succeeded = await atlas.list_predictions(state="succeeded", model=FLUX, size=50)
    assert not set(ids) & {item.id for item in succeeded.items}
    with pytest.raises(InputError):
        await atlas.list_predictions(size=51)


async def test_catalogue_and_schema_without_the_key(atlas: AtlasClient, emulator: Emulator) -> None:
    models = await atlas.list_models()
    flux = next(m for m in models if m.model == FLUX)
    assert flux.type == "Image"
    assert flux.price is not None and flux.price.base_price == pytest.approx(0.003)
    assert {m.type for m in models} >= {"Image", "Video", "Audio", "Text"}
    assert flux.schema_url is not None
    schema = await atlas.get_schema(flux.schema_url)
    properties = schema["components"]["schemas"]["Input"]["properties"]
    assert {"prompt", "size", "num_images", "seed", "image", "strength"} <= set(properties)
    assert all("authorization" not in r.headers for r in emulator.state.requests)


async def test_upload_round_trip(atlas: AtlasClient, tmp_path: Path) -> None:
    payload = b"\x89PNG\r\n\x1a\n" + os.urandom(300_000)
    with io.BytesIO(payload) as handle:
        uploaded = await atlas.upload(handle, filename="cat picture.png", content_type="image/png", size=len(payload))
    assert uploaded.size == len(payload)
    assert uploaded.filename is not None and uploaded.filename.endswith(".png")
    data, _ = await atlas.download(uploaded.download_url, max_bytes=1 << 20)
    assert data == payload


class _CountingReader(io.RawIOBase):
    """A file of ``size`` zero bytes that records how much it was asked for at once."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, n if n >= 0 else self.remaining)
        n = self.remaining if n < 0 else min(n, self.remaining)
        self.remaining -= n
        return bytes(n)


async def test_a_large_upload_is_streamed_not_read_whole(atlas: AtlasClient) -> None:
    size = 256 * 1024 * 1024
    reader = _CountingReader(size)
    tracemalloc.start()
    try:
        uploaded = await atlas.upload(reader, filename="big.bin", content_type="video/mp4", size=size)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert uploaded.size == size
    assert reader.largest_read <= 1024 * 1024
    # The emulator shares this process, so its buffers count too; still far below the file's size.
    assert peak < 32 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB upload"


async def test_downloads_only_from_https_or_the_origin(atlas: AtlasClient, emulator: Emulator) -> None:
    for url in ["http://example.com/a.png", "https://127.0.0.1/a.png", "https://10.0.0.8/a.png", "file:///etc/passwd"]:
        with pytest.raises(BadResponseError):
            await atlas.download(url, max_bytes=1024)
    emulator.state.add_fault(
        Fault(path="/emulator-storage/outputs/", kind="redirect", location="http://169.254.169.254/x")
    )
    with pytest.raises(BadResponseError):
        await atlas.download(f"{emulator.url}/emulator-storage/outputs/{'a' * 32}/0.png", max_bytes=1024)
    assert not any("169.254" in r.path for r in emulator.state.requests)


async def test_the_key_never_appears_in_any_error(emulator: Emulator) -> None:
    faults = [
        Fault(path="/api/v1/", kind="status", status=500, times=None, message=f"echo Bearer {TEST_KEY}"),
        Fault(path="/api/v1/", kind="html", status=502, times=None),
        Fault(path="/api/v1/", kind="malformed", times=None),
        Fault(path="/api/v1/", kind="reset", times=None),
        Fault(path="/api/v1/", kind="rate_limit", times=None),
    ]
    seen: list[str] = []
    async with AtlasClient(api_key=TEST_KEY, base_url=emulator.url, retry=FAST_RETRY) as atlas:
        for fault in faults:
            emulator.state.clear_faults()
            emulator.state.add_fault(fault)
            for call in (
                lambda: atlas.submit(FLUX, {"prompt": "x"}),
                lambda: atlas.get_prediction("a" * 32),
                lambda: atlas.list_predictions(),
            ):
                with pytest.raises(AtlasMCPError) as caught:
                    await call()
                seen.append(f"{caught.value!s} {caught.value!r}")
    assert seen
    assert not [text for text in seen if TEST_KEY in text]
    assert any("[redacted]" in text for text in seen)
