"""Streamable HTTP: the console script serving ``/mcp`` as a real process, reached by the SDK's own HTTP client in
both protocol eras, with each caller's key kept to that caller's requests."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from atlas_mcp.emulator import Emulator, Fault

from .conftest import ALL_TOOLS, free_port
from .harness import CONSOLE_SCRIPT, expect_done, expect_error, server_env, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.integration]  # HTTP server processes

ERAS = {"2025": "legacy", "2026": "auto"}
KEYS = [f"sk-caller-{n:02d}-{'x' * 20}" for n in range(8)]


@contextmanager
def http_server(env: dict[str, str], log: Path, *, host: str = "127.0.0.1", auth: str = "header") -> Iterator[str]:
    """``atlascloud-mcp serve --transport http`` on a free port until it answers /healthz; yields its origin."""
    port = free_port()
    with log.open("ab") as errors:
        process = subprocess.Popen(
            [CONSOLE_SCRIPT, "serve", "--transport", "http", "--host", host, "--port", str(port), "--auth", auth],
            env=env,
            stdout=errors,
            stderr=errors,
        )
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{origin}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the HTTP server did not come up in 20 s"
            time.sleep(0.05)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=10)


def http_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = server_env(emulator.url, tmp_path, ATLASCLOUD_STATE_URL=f"sqlite:///{tmp_path / 'state.db'}")
    env.pop("ATLASCLOUD_API_KEY")  # each request brings its own
    env.pop("ATLASCLOUD_OUTPUT_DIR")  # a remote server saves nothing unless told to
    return env | extra


@asynccontextmanager
async def connect(origin: str, bearer: str | None, era: str, **client: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(f"{origin}/mcp", http_client=http), mode=ERAS[era], **client) as session,
    ):
        yield session


@pytest.fixture
def served(emulator: Emulator, tmp_path: Path) -> Iterator[str]:
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        yield origin


def test_probes_answer_without_a_token(served: str) -> None:
    assert httpx.get(f"{served}/healthz").text == "ok\n"
    ready = httpx.get(f"{served}/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True}


def test_readiness_says_which_part_is_not_ready_and_never_hangs(served: str, emulator: Emulator) -> None:
    emulator.state.add_fault(Fault(path="/api/v1/models", kind="delay", seconds=30, times=None))
    started = time.monotonic()
    answer = httpx.get(f"{served}/readyz", timeout=20)
    assert time.monotonic() - started < 10
    assert answer.status_code == 503
    assert answer.json() == {"ready": False, "why": {"atlas": "did not answer within 5 s"}}
    emulator.state.clear_faults()
    assert httpx.get(f"{served}/readyz", timeout=20).json() == {"ready": True}


def test_a_request_without_a_key_is_told_which_header_to_send_and_nothing_invites_oauth(served: str) -> None:
    """Header mode sends no OAuth signals (issue 25): a client that sees them signs in instead of sending its
    configured header (Cursor), or shows "needs authentication" although its header works (Claude Code)."""
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        answer = httpx.post(f"{served}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
        assert answer.status_code == 401
        challenge = answer.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), challenge
        assert "resource_metadata" not in challenge and "resource_metadata" not in answer.text
        assert "Send your Atlas Cloud API key in the header 'Authorization: Bearer <key>'" in challenge
        assert answer.json()["error_description"] in challenge
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/authorize",
        "/token",
    ):
        assert httpx.get(f"{served}{path}").status_code == 404, path
    registered = httpx.post(f"{served}/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]})
    assert registered.status_code == 404  # no registration; the words are for clients that try it anyway
    assert "No OAuth sign-in here. Send your Atlas Cloud API key" in registered.text


def test_host_and_origin_are_checked_and_bodies_are_bounded(served: str) -> None:
    key = {"Authorization": f"Bearer {KEYS[0]}"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    rebound = httpx.post(f"{served}/mcp", json=body, headers={**key, "Host": "evil.example"})
    assert rebound.status_code in (403, 421)
    foreign = httpx.post(f"{served}/mcp", json=body, headers={**key, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    huge = httpx.post(
        f"{served}/mcp",
        content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":"' + b"a" * (5 << 20) + b'"}}',
        headers={**key, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    assert huge.status_code == 413


@pytest.mark.parametrize("era", ERAS)
async def test_a_generation_over_http_uses_the_callers_key_and_reports_progress(
    served: str, emulator: Emulator, era: str
) -> None:
    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    emulator.state.config.prediction_seconds = 1.0
    async with connect(served, KEYS[1], era) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "generate_image" in names
        result = await client.call_tool("generate_image", {"prompt": "a fox"}, progress_callback=on_progress)
    done = expect_done(result)
    assert done["outputs"][0]["url"] and done["outputs"][0]["saved_path"] is None  # a remote server saves nothing
    assert any("Submitting" in message for message in progress) and len(progress) >= 3
    paid = [r for r in emulator.state.requests if r.path.startswith("/api/v1/model/")]
    assert paid and all(r.headers.get("authorization") == f"Bearer {KEYS[1]}" for r in paid)


@pytest.mark.parametrize("era", ERAS)
async def test_upload_media_over_http_takes_the_file_itself_never_a_local_path(
    served: str, emulator: Emulator, era: str
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(picture, "PNG")
    encoded = base64.b64encode(picture.getvalue()).decode()
    async with connect(served, KEYS[0], era) as client:
        refused = await client.call_tool("upload_media", {"path": "/etc/hostname"})
        expect_error("upload_media", refused, "runs remotely", "no path was read", "data")
        sent = await client.call_tool("upload_media", {"data": f"data:image/png;base64,{encoded}", "filename": "t.jpg"})
        assert not sent.is_error, text_of(sent)
        uploaded = sent.structured_content
        assert uploaded is not None and uploaded["filename"] == "t.png" and uploaded["content_type"] == "image/png"
        # Re-hosting a file by URL (here the emulator's own, standing in for a public https one).
        again = await client.call_tool("upload_media", {"url": uploaded["url"]})
        assert not again.is_error and again.structured_content is not None, text_of(again)
        assert again.structured_content["size_bytes"] == len(picture.getvalue())
        for arguments, phrase in (
            ({"data": "not base64 at all!"}, "not valid base64"),
            ({"data": base64.b64encode(b"MZ\x90\x00 an exe").decode()}, "not a recognised image"),
            ({"url": "http://example.com/a.png"}, "must be https"),
            ({"url": "https://127.0.0.1/a.png"}, "could not be fetched"),
            ({"data": encoded, "url": "https://example.com/a.png"}, "exactly one of path, data or url"),
        ):
            expect_error("upload_media", await client.call_tool("upload_media", arguments), phrase)
    uploads = [r for r in emulator.state.requests if r.method == "POST" and "upload" in r.path]
    assert len(uploads) == 2 and all(r.headers.get("authorization") == f"Bearer {KEYS[0]}" for r in uploads)


async def test_concurrent_callers_with_different_keys_never_mix(
    served: str, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.state.config.prediction_seconds = 0.5
    owners: dict[str, str] = {}

    async def caller(key: str, number: int) -> None:
        async with connect(served, key, "2026") as client:
            result = await client.call_tool("generate_image", {"prompt": f"call {number}"})
            owners[expect_done(result)["prediction_id"]] = key

    async with anyio.create_task_group() as group:
        for number in range(40):
            group.start_soon(caller, KEYS[number % len(KEYS)], number)
    assert len(owners) == 40
    for request in emulator.state.requests:
        owner = next((key for pid, key in owners.items() if pid in request.path), None)
        if owner is not None and request.path.startswith("/api/"):  # each read carried its maker's key
            assert request.headers.get("authorization") == f"Bearer {owner}", request.path
        elif owner is not None:  # output files are public: no key at all
            assert "authorization" not in request.headers
    submits = [r.headers.get("authorization") for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert sorted(submits) == sorted(f"Bearer {key}" for key in owners.values())
    log = (tmp_path / "http.log").read_text()  # at DEBUG: every request and poll was logged
    assert "HTTP Request: POST" in log
    assert not [key for key in KEYS if key in log or key[-12:] in log]


async def test_shared_key_mode_takes_only_its_tokens_and_budgets_each(emulator: Emulator, tmp_path: Path) -> None:
    tokens = ["team-token-one-0123456789abcdef", "team-token-two-0123456789abcdef"]
    env = http_env(
        emulator,
        tmp_path,
        ATLASCLOUD_API_KEY="sk-the-teams-own-key-000000",
        ATLASCLOUD_HTTP_TOKENS=",".join(tokens),
        ATLASCLOUD_BUDGET_USD="0.003",
    )
    with http_server(env, tmp_path / "http.log") as origin:
        refused = httpx.post(
            f"{origin}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer sk-some-atlas-key-0000000000"},
        )
        assert refused.status_code == 401
        async with connect(origin, tokens[0], "2026") as client:
            expect_done(await client.call_tool("generate_image", {"prompt": "one"}))
            over = await client.call_tool("generate_image", {"prompt": "two"})
            expect_error("generate_image", over, "budget")
        async with connect(origin, tokens[1], "2025") as client:  # another token, another budget
            expect_done(await client.call_tool("generate_image", {"prompt": "two"}))
    submits = [r for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert len(submits) == 2
    assert all(r.headers.get("authorization") == "Bearer sk-the-teams-own-key-000000" for r in submits)
    log = (tmp_path / "http.log").read_text()
    for secret in (*tokens, "sk-the-teams-own-key-000000"):
        assert secret not in log


def test_a_public_address_needs_allowed_hosts(emulator: Emulator, tmp_path: Path) -> None:
    done = subprocess.run(
        [CONSOLE_SCRIPT, "serve", "--transport", "http", "--host", "0.0.0.0", "--port", str(free_port())],
        env=http_env(emulator, tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "ATLASCLOUD_HTTP_ALLOWED_HOSTS" in done.stderr
    assert done.stdout == ""


def test_the_server_says_where_it_listens_on_stderr(served: str, tmp_path: Path) -> None:
    log = (tmp_path / "http.log").read_text()
    assert f"serving MCP over Streamable HTTP at {served}/mcp" in log
    assert "each request brings its own Atlas key" in log
    assert "Warning" not in log, log  # a clean start: nothing for an operator to wonder about
    assert os.environ.get("ATLASCLOUD_API_KEY", "") == "" or os.environ["ATLASCLOUD_API_KEY"] not in log


async def test_confirmation_over_stateless_http(emulator: Emulator, tmp_path: Path) -> None:
    """The 2026 era asks through the call's result, so stateless HTTP can ask the user; a 2025-era client over
    stateless HTTP cannot be asked mid-call, so it gets the confirm token instead."""
    from mcp_types import ElicitResult

    questions: list[str] = []

    async def accept(context: Any, params: Any) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action="accept", content={"pay": True})

    env = http_env(emulator, tmp_path, ATLASCLOUD_CONFIRM_ABOVE_USD="0")
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, KEYS[2], "2026", elicitation_callback=accept) as client:
            expect_done(await client.call_tool("generate_image", {"prompt": "asked"}))
        assert len(questions) == 1 and "black-forest-labs/flux-schnell" in questions[0]
        async with connect(origin, KEYS[2], "2025", elicitation_callback=accept) as client:
            first = await client.call_tool("generate_image", {"prompt": "token"})
            text = expect_error("generate_image", first, "Show the user")
            token = text.split('confirm="')[1].split('"')[0]
            expect_done(await client.call_tool("generate_image", {"prompt": "token", "confirm": token}))
    assert len(questions) == 1
    assert "confirm=" not in text_of(first).split("Show the user")[0]


@pytest.mark.parametrize("era", ERAS)
async def test_the_gallery_works_over_http_in_both_eras(served: str, era: str) -> None:
    """A 2026-era request declares its capabilities, so only an Apps client gets the ``view`` block. A 2025-era
    request over stateless HTTP declares none (its ``initialize`` was another request), so it gets the block
    whatever it is: an Apps host there still needs it for Vary and Use as input."""
    apps = advertise("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})
    viewed = {}
    for name, extensions in (("plain", []), ("apps", [apps])):
        async with connect(served, KEYS[4], era, extensions=extensions) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            uri = (tools["generate_image"].meta or {})["ui"]["resourceUri"]
            page = (await client.read_resource(uri)).contents[0]
            assert page.mime_type == "text/html;profile=mcp-app" and "<script" in getattr(page, "text", "")
            done = expect_done(await client.call_tool("generate_image", {"prompt": f"{name} over http", "seed": 3}))
            viewed[name] = done.get("view")
    assert viewed["apps"] == {
        "tool": "generate_image",
        "arguments": {
            "prompt": "apps over http",
            "model": "black-forest-labs/flux-schnell",
            "num_images": 1,
            "seed": 3,
        },
        "seed": 3,
        "kind": "image",
    }
    assert (viewed["plain"] is None) == (era == "2026")


# The Inspector's CLI sends headers from 0.16 on, which needs Node 22: npx takes Node 22 from the npm registry too.
INSPECTOR = ["npx", "-y", "-p", "node@22", "-p", "@modelcontextprotocol/inspector@0.21.2", "--", "mcp-inspector"]


@pytest.mark.usefixtures("npx")
def test_the_mcp_inspector_connects_with_nothing_but_the_url_and_a_header(
    served: str, emulator: Emulator, tmp_path: Path
) -> None:
    """The README's remote-client promise, kept by a real client: the URL and an Authorization header."""
    emulator.state.config.prediction_seconds = 0.5

    def inspect(*args: str, key: str | None = KEYS[3]) -> subprocess.CompletedProcess[str]:
        header = ["--header", f"Authorization: Bearer {key}"] if key else []
        command = [*INSPECTOR, "--cli", f"{served}/mcp", "--transport", "http", *header, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    listed = inspect("--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    assert {tool["name"] for tool in json.loads(listed.stdout)["tools"]} == ALL_TOOLS
    called = inspect("--method", "tools/call", "--tool-name", "generate_image", "--tool-arg", "prompt=inspector")
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result.get("isError") is not True and result["structuredContent"]["phase"] == "succeeded"
    assert any(block["type"] == "image" for block in result["content"])
    paid = [r for r in emulator.state.requests if r.path.startswith("/api/v1/model/")]
    assert paid and all(r.headers.get("authorization") == f"Bearer {KEYS[3]}" for r in paid)
    refused = inspect("--method", "tools/list", key=None)
    assert refused.returncode != 0 and "Send your Atlas Cloud API key" in refused.stdout + refused.stderr


CLAUDE_CODE = ["npx", "-y", "-p", "node@22", "-p", "@anthropic-ai/claude-code@2.1.332", "--", "claude"]


@pytest.mark.usefixtures("npx")
def test_claude_code_connects_with_the_readmes_command(served: str, tmp_path: Path) -> None:
    """The README's ``claude mcp add --transport http … --header`` line, run by Claude Code itself; its health
    check connects. Without the header, it shows what our 404 at /register says to send."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # A scratch HOME for Claude Code's config, but npm's own download cache, shared with the other npx tests.
        "NPM_CONFIG_CACHE": os.environ.get("NPM_CONFIG_CACHE") or str(Path.home() / ".npm"),
    }

    def claude(*args: str) -> str:
        done = subprocess.run([*CLAUDE_CODE, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    header = f"Authorization: Bearer {KEYS[5]}"
    claude("mcp", "add", "--transport", "http", "atlascloud", f"{served}/mcp", "--header", header)
    claude("mcp", "add", "--transport", "http", "forgot-the-key", f"{served}/mcp")
    listed = {line.split(":")[0]: line for line in claude("mcp", "list").splitlines() if ": http" in line}
    assert "✔ Connected" in listed["atlascloud"], listed
    assert "Connected" not in listed["forgot-the-key"]
    # No OAuth is offered, yet Claude Code tries the 2025 spec's default registration endpoint after any 401: the
    # 404 it gets says which header to send, and Claude Code shows those words.
    assert "Send your Atlas Cloud API key in the header" in listed["forgot-the-key"], listed
