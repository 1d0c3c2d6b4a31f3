"""The fault matrix, end to end: the MCP client, our server as a subprocess over stdio, the Atlas emulator.

For each way Atlas (or the network to it) misbehaves, the tool answers with a clear error or the right
result, the server stays up and answers the next call, the billable POST goes out at most once, and
nothing waits past its bound. One server runs for the whole module, with its stdout captured byte for
byte and its stderr logged at DEBUG to a file; the last test scans all of it, and every tool result, for
the API key. docs/reliability.md has the table of these cases and what the user sees.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp import Client
from mcp_types import CallToolResult
from PIL import Image

from atlas_mcp.emulator import Emulator, Fault, PredictionPlan

from .conftest import PREDICTION_SECONDS, TEST_KEY
from .harness import ServerProcess, emulator_env, expect_done, expect_error, images_of, server_env, text_of

pytestmark = pytest.mark.anyio

SUBMIT = "/api/v1/model/generateImage"
POLL = "/api/v1/model/prediction/"
OUTPUT = "/emulator-storage/outputs/"
UPLOAD = "/api/v1/model/uploadMedia"
# The session's ATLASCLOUD_HTTP_TIMEOUT (T). A whole call, retries included, may take 2 T: enough for the
# retry policy's longest backoff (3.5 s), so that bursts recover every time.
HTTP_TIMEOUT = 2.0
SMALL = {"size": "256*256"}  # quick to paint and to preview
SIGNATURE = "SIGNATURE-SECRET-4711"  # a signed-URL query an upstream error echoes; must not come through
DOCS = Path(__file__).parent.parent / "docs" / "reliability.md"


@dataclass
class Matrix:
    """The module's one server session, and everything it has said."""

    client: Client
    emulator: Emulator
    server: ServerProcess
    workdir: Path
    upload: Path
    done_id: str = ""
    results: list[CallToolResult] = field(default_factory=list)
    logs: list[mcp_types.LoggingMessageNotificationParams] = field(default_factory=list)
    other_servers: list[ServerProcess] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)

    async def call(self, tool: str, arguments: dict[str, Any], *, within: float = 5.0) -> CallToolResult:
        """Call a tool; fail the test if it takes longer than ``within`` seconds."""
        with anyio.fail_after(within):
            result = await self.client.call_tool(tool, arguments)
        self.results.append(result)
        return result

    def arm(self, *faults: Fault) -> None:
        for fault in faults:
            self.emulator.state.add_fault(fault)

    def count(self, method: str, path: str) -> int:
        return len([r for r in self.emulator.state.requests if r.method == method and r.path.startswith(path)])


@dataclass(frozen=True)
class Case:
    id: str
    fault: str  # what goes wrong upstream (a row of the docs table)
    sees: str  # what the user gets
    run: Callable[[Matrix], Awaitable[None]]


CASES: dict[str, Case] = {}


def case(case_id: str, fault: str, sees: str) -> Callable[[Callable[[Matrix], Awaitable[None]]], Any]:
    def register(run: Callable[[Matrix], Awaitable[None]]) -> Callable[[Matrix], Awaitable[None]]:
        CASES[case_id] = Case(case_id, fault, sees, run)
        return run

    return register


async def generate(m: Matrix, *, within: float = 5.0, **arguments: Any) -> CallToolResult:
    return await m.call("generate_image", {"prompt": "a lighthouse", **SMALL, **arguments}, within=within)


async def check(m: Matrix, prediction_id: str | None = None, *, within: float = 5.0, **extra: Any) -> CallToolResult:
    return await m.call("check_prediction", {"prediction_id": prediction_id or m.done_id, **extra}, within=within)


# -- rate limiting ------------------------------------------------------------------------------------


@case("429-retry-after-poll", "429 with `Retry-After: 0.3`, twice, on a read", "the result, about 0.6 s later")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="rate_limit", retry_after=0.3, times=2))
    started = time.monotonic()
    expect_done(await check(m))
    assert time.monotonic() - started >= 0.6  # Retry-After honoured
    assert m.count("GET", POLL) == 3


@case("429-poll", "429 without `Retry-After`, once, on a read", "the result (retried after a jittered backoff)")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="rate_limit"))
    expect_done(await check(m))
    assert m.count("GET", POLL) == 2


@case(
    "429-persists-poll",
    "429 on every read",
    'error "Atlas is rate-limiting this key (HTTP 429) … Try again in 0.2 s" after 4 tries',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="rate_limit", retry_after=0.2, times=None))
    expect_error("check_prediction", await check(m), "HTTP 429", "Try again in 0.2 s")
    assert m.count("GET", POLL) == 4


@case(
    "429-retry-after-submit",
    "429 with `Retry-After: 2` on the submit",
    'error "… (HTTP 429) … Try again in 2 s"; the POST is not repeated',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="rate_limit", retry_after=2))
    expect_error("generate_image", await generate(m), "HTTP 429", "Try again in 2 s")
    assert m.count("POST", SUBMIT) == 1


@case("429-submit", "429 without `Retry-After` on the submit", 'error "… (HTTP 429) … Try again in a little while"')
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="rate_limit"))
    expect_error("generate_image", await generate(m), "HTTP 429", "in a little while")
    assert m.count("POST", SUBMIT) == 1


# -- server errors ------------------------------------------------------------------------------------


@case("5xx-burst-poll", "500, then 502, then 503 on reads, then recovery", "the result (3 retries, jittered backoff)")
async def _(m: Matrix) -> None:
    m.arm(*(Fault(path=POLL, kind="status", status=status) for status in (500, 502, 503)))
    expect_done(await check(m, within=8))
    assert m.count("GET", POLL) == 4


@case("5xx-burst-while-waiting", "503 twice while generate_image polls", "the image, as if nothing happened")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="status", status=503, times=2))
    expect_done(await generate(m, within=8))
    assert m.count("POST", SUBMIT) == 1


@case(
    "5xx-persists-poll",
    "503 on every read",
    'error "Atlas is having trouble (HTTP 503). Atlas said: … Try again in a minute." after 4 tries',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="status", status=503, times=None))
    expect_error("check_prediction", await check(m, within=8), "HTTP 503", "Try again in a minute")
    assert m.count("GET", POLL) == 4


@case(
    "502-submit",
    "502 on the submit",
    'error "Atlas is having trouble (HTTP 502) … The request may still have reached Atlas. Look at list_predictions '
    'before trying again …"; the POST is not repeated',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="status", status=502))
    expect_error("generate_image", await generate(m), "HTTP 502", "may still have reached Atlas", "list_predictions")
    assert m.count("POST", SUBMIT) == 1


@case(
    "html-502-submit",
    "an nginx HTML page with 502 on the submit",
    'error "… (HTTP 502). Atlas said: 502 Bad Gateway … The request may still have reached Atlas: look at '
    'list_predictions …", markup stripped',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="html", status=502))
    text = expect_error("generate_image", await generate(m), "HTTP 502", "Bad Gateway", "Look at list_predictions")
    assert "<" not in text
    assert m.count("POST", SUBMIT) == 1


@case("html-503-poll", "an nginx HTML page with 503, once, on a read", "the result")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="html", status=503))
    expect_done(await check(m))


@case("html-200-poll", "an HTML page with status 200 on a read", 'error "Atlas answered with a body that is not JSON"')
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="html", status=200))
    expect_error("check_prediction", await check(m), "not JSON")


@case(
    "envelope-error-submit",
    'HTTP 200 whose envelope says `{"code": 500, "data": null}` on the submit',
    'error "Atlas is having trouble (HTTP 500). Atlas said: <its message> …"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="envelope_error", message="upstream queue unavailable"))
    expect_error("generate_image", await generate(m), "HTTP 500", "upstream queue unavailable")
    assert m.count("POST", SUBMIT) == 1


@case("envelope-error-poll", "HTTP 200 with an error envelope, once, on a read", "the result (retried like a 500)")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="envelope_error"))
    expect_done(await check(m))
    assert m.count("GET", POLL) == 2


# -- the network --------------------------------------------------------------------------------------


@case(
    "reset-submit",
    "connection reset (RST, no answer) on the submit",
    'error "Atlas could not be reached (…). The request may still have reached Atlas. Look at list_predictions '
    'before trying again …"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="reset"))
    expect_error("generate_image", await generate(m), "could not be reached", "Look at list_predictions")
    assert m.count("POST", SUBMIT) == 1


@case("reset-poll", "connection reset, once, on a read", "the result")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="reset"))
    expect_done(await check(m))


@case(
    "hang-submit",
    "the submit's answer never comes (longer than the timeout)",
    'error "Atlas did not answer in time (ReadTimeout). The request may still have reached Atlas …" after T',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="delay", seconds=3 * HTTP_TIMEOUT))
    started = time.monotonic()
    expect_error("generate_image", await generate(m), "did not answer in time", "Look at list_predictions")
    assert time.monotonic() - started < 3 * HTTP_TIMEOUT
    assert m.count("POST", SUBMIT) == 1


@case("hang-poll", "one read's answer never comes", "the result (the read is retried)")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="delay", seconds=3 * HTTP_TIMEOUT))
    expect_done(await check(m))


@case(
    "hang-persists-poll",
    "no read is ever answered",
    'error "Atlas did not answer in time (…). Check the network …" after 2 T (one retry fits)',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="delay", seconds=3 * HTTP_TIMEOUT, times=None))
    started = time.monotonic()
    expect_error("check_prediction", await check(m, within=3 * HTTP_TIMEOUT), "did not answer in time")
    assert 2 * HTTP_TIMEOUT <= time.monotonic() - started < 2 * HTTP_TIMEOUT + 0.5
    assert m.count("GET", POLL) == 2


@case(
    "trickle-poll",
    "a read's answer drips in, 1 KiB every 0.2 s, so no single read times out",
    'error "Atlas did not answer in time (TimeoutError) …": the call is cut at 2 T',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="trickle", size=64 * 1024, seconds=0.2))
    started = time.monotonic()
    expect_error("check_prediction", await check(m, within=3 * HTTP_TIMEOUT), "did not answer in time (TimeoutError)")
    assert 2 * HTTP_TIMEOUT <= time.monotonic() - started < 2 * HTTP_TIMEOUT + 0.5


@case(
    "connect-refused",
    "nothing listens at ATLASCLOUD_BASE_URL (connection refused)",
    'error "… Atlas could not be reached (ConnectError) … Check the network or ATLASCLOUD_BASE_URL"; nothing is sent',
)
async def _(m: Matrix) -> None:
    with socket.socket() as probe:  # a loopback port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    other = ServerProcess(
        server_env(f"http://127.0.0.1:{closed_port}", m.workdir, ATLASCLOUD_HTTP_TIMEOUT=str(HTTP_TIMEOUT)),
        m.workdir / "refused-stderr.log",
    )
    m.other_servers.append(other)
    async with Client(other.transport()) as client:
        for tool, arguments in [
            ("generate_image", {"prompt": "x"}),
            ("check_prediction", {"prediction_id": "a" * 32}),
        ]:
            with anyio.fail_after(8):
                result = await client.call_tool(tool, arguments)
            m.results.append(result)
            expect_error(tool, result, "could not be reached (ConnectError)", "ATLASCLOUD_BASE_URL")
        assert (await client.list_tools()).tools  # still up
    assert other.returncode == 0


# -- bodies in no documented form ---------------------------------------------------------------------


@case(
    "malformed-submit",
    "truncated JSON with HTTP 200 on the submit",
    'error "Atlas answered with a body that is not JSON … The request may still have reached Atlas: look at '
    'list_predictions …"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="malformed"))
    expect_error("generate_image", await generate(m), "not JSON", "Look at list_predictions")
    assert m.count("POST", SUBMIT) == 1


@case("malformed-poll", "truncated JSON with HTTP 200 on a read", 'error "… not JSON …"')
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="malformed"))
    expect_error("check_prediction", await check(m), "not JSON")


@case(
    "malformed-while-waiting",
    "truncated JSON on a poll while generate_image waits",
    'error "Prediction <id> was submitted, but reading its state failed: … It may still be running at Atlas. Call '
    'check_prediction with this id later to get the result, instead of submitting it again"; check_prediction then '
    "finishes it for free",
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="malformed"))
    text = expect_error("generate_image", await generate(m), "Call check_prediction with this id")
    [prediction_id] = re.findall(r"Prediction ([0-9a-f]{32}) was submitted", text)
    expect_done(await check(m, prediction_id, wait=True))
    assert m.count("POST", SUBMIT) == 1


@case(
    "missing-fields-submit",
    'HTTP 200 with `"data": {}` on the submit',
    'error "Atlas\'s prediction is missing or has malformed fields (id) … Look at list_predictions …"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="missing_fields"))
    expect_error(
        "generate_image", await generate(m), "missing or has malformed fields (id)", "Look at list_predictions"
    )
    assert m.count("POST", SUBMIT) == 1


@case("missing-fields-poll", 'HTTP 200 with `"data": {}` on a read', 'error "… missing or has malformed fields (id) …"')
async def _(m: Matrix) -> None:
    m.arm(Fault(path=POLL, kind="missing_fields"))
    expect_error("check_prediction", await check(m), "missing or has malformed fields (id)")


@case("unenveloped", "answers without the `{code, data}` envelope", "the result")
async def _(m: Matrix) -> None:
    m.arm(Fault(path=SUBMIT, kind="unenveloped"), Fault(path=POLL, kind="unenveloped", times=None))
    expect_done(await generate(m))


# -- Atlas's own answers ------------------------------------------------------------------------------


@case(
    "failed-prediction",
    "the prediction fails: HTTP 500 whose body holds the terminal prediction",
    'error "Prediction <id> failed: <Atlas\'s reason> …"; the read is not retried',
)
async def _(m: Matrix) -> None:
    m.emulator.state.plan_next(PredictionPlan(fail="NSFW content detected in the output"))
    text = expect_error("generate_image", await generate(m), "failed: NSFW content detected")
    [prediction_id] = re.findall(r"Prediction ([0-9a-f]{32}) failed", text)
    polls = m.count("GET", POLL)
    expect_error("check_prediction", await check(m, prediction_id), "NSFW content detected")
    assert m.count("GET", POLL) == polls + 1


@case(
    "balance-402",
    "402, insufficient balance, on the submit",
    'error "The Atlas account\'s balance is too low … Top up …; nothing was generated"',
)
async def _(m: Matrix) -> None:
    m.emulator.state.balance = 0
    try:
        expect_error("generate_image", await generate(m), "balance is too low")
    finally:
        m.emulator.state.balance = 1000
    assert m.count("POST", SUBMIT) == 1


@case("key-refused-401", "401, the key is refused", 'error "Atlas refused the API key (HTTP 401) … Check the key"')
async def _(m: Matrix) -> None:
    m.emulator.state.config.api_key = "a-different-key"
    try:
        expect_error("generate_image", await generate(m), "refused the API key", "ATLASCLOUD_API_KEY")
    finally:
        m.emulator.state.config.api_key = None


@case(
    "wait-bound",
    "the prediction outlasts the call's wait bound",
    'phase "running" with the prediction_id and "call check_prediction … do not submit the generation again"',
)
async def _(m: Matrix) -> None:
    m.emulator.state.plan_next(PredictionPlan(seconds=1.5))
    started = time.monotonic()
    pending = await generate(m, max_wait_seconds=0.3)
    assert time.monotonic() - started < 1.5
    assert not pending.is_error and pending.structured_content is not None
    assert pending.structured_content["phase"] == "running"
    assert "check_prediction" in text_of(pending)
    expect_done(await check(m, pending.structured_content["prediction_id"], wait=True))


@case(
    "echoed-secrets-submit",
    "a 400 whose message echoes `Authorization: Bearer <key>` and a signed URL",
    "the error with `[redacted]` in their place",
)
async def _(m: Matrix) -> None:
    echo = (
        f"bad request (Authorization: Bearer {TEST_KEY}); see https://storage.example/x.png?X-Amz-Signature={SIGNATURE}"
    )
    m.arm(Fault(path=SUBMIT, kind="status", status=400, message=echo))
    text = expect_error("generate_image", await generate(m), "HTTP 400", "[redacted]", "https://storage.example/x.png")
    assert TEST_KEY not in text and SIGNATURE not in text


@case(
    "echoed-secrets-failure",
    "a failed prediction whose reason echoes the key",
    "the failure's reason with `[redacted]` in its place",
)
async def _(m: Matrix) -> None:
    m.emulator.state.plan_next(PredictionPlan(fail=f"worker rejected token={TEST_KEY}"))
    text = expect_error("generate_image", await generate(m), "worker rejected token=[redacted]")
    assert TEST_KEY not in text


# -- outputs and uploads ------------------------------------------------------------------------------


@case(
    "output-404",
    "the output URL answers 404",
    'the result with the URL and the note "not fetched: The output file answered HTTP 404; it may have expired"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=OUTPUT, kind="status", status=404, times=None))
    result = await generate(m)
    output = expect_done(result)["outputs"][0]
    assert "HTTP 404" in output["note"] and output["url"] in text_of(result)
    assert images_of(result) == [] and output["saved_path"] is None


@case(
    "output-huge",
    "the output streams more than 64 MiB (no Content-Length)",
    'the result with the URL and the note "not fetched: The output file is larger than 64 MiB; stopped reading"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=OUTPUT, kind="huge_body", size=65 * 1024 * 1024))
    result = await generate(m)
    assert "larger than 64 MiB" in expect_done(result)["outputs"][0]["note"]
    assert images_of(result) == []


@case(
    "output-trickle",
    "the output drips in, 1 KiB every 0.2 s",
    'the result with the URL and the note "not fetched: The output file took longer than 2 T to fetch …"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=OUTPUT, kind="trickle", size=256 * 1024, seconds=0.2))
    started = time.monotonic()
    result = await generate(m, within=3 * HTTP_TIMEOUT + 2)
    assert f"took longer than {2 * HTTP_TIMEOUT:g} s" in expect_done(result)["outputs"][0]["note"]
    assert time.monotonic() - started < 2 * HTTP_TIMEOUT + 2


@case(
    "output-redirect-private",
    "the output URL redirects to `https://169.254.169.254/…` (a metadata service)",
    'the result with the URL and the note "not fetched: The output URL points at a private or local address"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=OUTPUT, kind="redirect", location="https://169.254.169.254/latest/meta-data/"))
    result = await generate(m)
    assert "private or local address" in expect_done(result)["outputs"][0]["note"]


@case(
    "output-redirect-http",
    "the output URL redirects to plain `http://` elsewhere",
    'the result with the URL and the note "not fetched: Only https output URLs … are fetched"',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=OUTPUT, kind="redirect", location="http://example.invalid/x.png"))
    result = await generate(m)
    assert "Only https output URLs" in expect_done(result)["outputs"][0]["note"]


@case(
    "upload-rejected",
    "413 on the upload",
    'error "Atlas refused the request (HTTP 413). Atlas said: <its message> …"; the upload is sent once',
)
async def _(m: Matrix) -> None:
    m.arm(Fault(path=UPLOAD, kind="status", status=413, message="file too large for this plan"))
    expect_error("upload_media", await m.call("upload_media", {"path": str(m.upload)}), "HTTP 413", "file too large")
    assert m.count("POST", UPLOAD) == 1


# -- the session --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def matrix(emulator_session: Emulator, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    emulator = emulator_session
    emulator.state.reset()
    emulator.state.config.prediction_seconds = 0.1
    workdir = tmp_path_factory.mktemp("faults")
    uploads = workdir / "uploads"
    uploads.mkdir()
    Image.new("RGB", (32, 32), "teal").save(uploads / "teal.png")
    env = emulator_env(
        emulator,
        workdir,
        ATLASCLOUD_HTTP_TIMEOUT=str(HTTP_TIMEOUT),
        ATLASCLOUD_WAIT_SECONDS="10",
        ATLASCLOUD_UPLOAD_ROOTS=str(uploads),
        ATLASCLOUD_REPEAT_WINDOW_S="0",  # every row is a fresh submit of the same request (the guard has its own tests)
    )
    server = ServerProcess(env, workdir / "stderr.log")
    logs: list[mcp_types.LoggingMessageNotificationParams] = []

    async def on_log(params: mcp_types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    try:
        async with Client(server.transport(), logging_callback=on_log, log_level="debug") as client:
            m = Matrix(client, emulator, server, workdir, uploads / "teal.png", logs=logs)
            m.done_id = expect_done(await generate(m, within=15))["prediction_id"]
            yield m
    finally:
        emulator.state.reset()
        emulator.state.config.prediction_seconds = PREDICTION_SECONDS
        emulator.state.config.api_key = None


async def run_case(m: Matrix, case_id: str) -> None:
    """One row: arm, call, check; then the server must still answer, and the POST went out at most once."""
    state = m.emulator.state
    state.clear_faults()
    state.clear_plans()
    state.clear_requests()
    await CASES[case_id].run(m)
    assert m.count("POST", SUBMIT) <= 1, "the billable POST was sent more than once"
    state.clear_faults()
    state.clear_plans()
    expect_done(await check(m))  # the server is up and answers the next call
    m.ran.add(case_id)


# Rows that wait out ATLASCLOUD_HTTP_TIMEOUT on purpose (2-4 s each), or start a second server: the integration lane.
WAIT_OUT_A_TIMEOUT = {
    "hang-submit",
    "hang-poll",
    "hang-persists-poll",
    "trickle-poll",
    "output-trickle",
    "connect-refused",
}


def _in_lane(case_id: str) -> Any:
    return pytest.param(case_id, marks=pytest.mark.integration) if case_id in WAIT_OUT_A_TIMEOUT else case_id


@pytest.mark.parametrize("case_id", [_in_lane(case_id) for case_id in CASES])
async def test_fault(matrix: Matrix, case_id: str) -> None:
    await run_case(matrix, case_id)


async def test_the_docs_table_lists_every_case() -> None:
    table = DOCS.read_text()
    missing = [case_id for case_id in CASES if f"`{case_id}`" not in table]
    assert not missing, f"docs/reliability.md lacks rows for {missing}"


@pytest.mark.parametrize("timeouts", [False, pytest.param(True, marks=pytest.mark.integration)])
async def test_nothing_the_server_wrote_holds_the_key(matrix: Matrix, timeouts: bool) -> None:
    """After the whole matrix (each lane's rows): stdout byte for byte, stderr at DEBUG, every tool result and log
    notification."""
    for case_id in CASES:  # when run alone, run this lane's rows first
        if case_id not in matrix.ran and (case_id in WAIT_OUT_A_TIMEOUT) == timeouts:
            await run_case(matrix, case_id)
    for tool, arguments in [
        ("list_models", {}),
        ("get_model_info", {"model": "black-forest-labs/flux-schnell"}),
        ("list_predictions", {"page_size": 50, "status": "failed"}),  # failures echoing the key among them
    ]:
        result = await matrix.call(tool, arguments)
        assert not result.is_error, text_of(result)
    await anyio.sleep(0.2)  # let the last log lines reach the file

    written: dict[str, bytes] = {
        "stdout": bytes(matrix.server.stdout),
        "stderr": matrix.server.stderr_path.read_bytes(),
        "tool results": "\n".join(result.model_dump_json() for result in matrix.results).encode(),
        "log notifications": "\n".join(log.model_dump_json() for log in matrix.logs).encode(),
    }
    for number, other in enumerate(matrix.other_servers):
        written[f"other server {number} stdout"] = bytes(other.stdout)
        written[f"other server {number} stderr"] = other.stderr_path.read_bytes()
    assert len(written["stdout"]) > 100_000 and b" DEBUG " in written["stderr"]  # there was plenty to scan
    for where, data in written.items():
        assert TEST_KEY.encode() not in data, f"the API key leaked into {where}"
        assert SIGNATURE.encode() not in data, f"a signed URL's query leaked into {where}"
        assert b"Traceback (most recent call last)" not in data, f"a traceback in {where}"
    assert matrix.server.unparsable == [], "stdout carried something that is not JSON-RPC"
