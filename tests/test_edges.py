"""Issue 22's edges (items 9, 10, 13, 16, 17): what the HTTP server answers before any route, what a tool result
may carry out, how long a body may take, every stdio line answered, and an emulator no web page can drive.

Each test failed against the code before its fix."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult, ResourceLink
from pydantic import SecretStr

from atlas_mcp.config import Settings
from atlas_mcp.emulator import Emulator, Fault, PredictionPlan
from atlas_mcp.server import create_server

from .conftest import TEST_KEY, free_port
from .harness import emulator_env, expect_done, expect_error, text_of
from .test_hostile import raw_wire
from .test_http import ERAS, KEYS, connect, http_env, http_server

pytestmark = pytest.mark.anyio

BODY_TIMEOUT_S = 1.0
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
def served(emulator: Emulator, tmp_path: Path) -> Iterator[str]:
    env = http_env(emulator, tmp_path, ATLASCLOUD_HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT_S))
    with http_server(env, tmp_path / "http.log") as origin:
        yield origin


def port_of(origin: str) -> int:
    return int(origin.rsplit(":", 1)[1])


# -- 9: Host and Origin before every route; probes that say nothing of why ------------------------------------


def test_the_host_check_runs_before_every_route_and_the_trailing_slash_redirect(served: str) -> None:
    key = {"Authorization": f"Bearer {KEYS[0]}"}
    port = port_of(served)
    evil = {"Host": f"evil.example:{port}"}
    # Starlette's redirect answered first, with a Location on the caller's Host.
    slash = httpx.post(f"{served}/mcp/", json=TOOLS_LIST, headers={**key, **MCP_HEADERS, **evil})
    assert slash.status_code == 421 and "location" not in slash.headers
    for method, path in [
        ("POST", "/register"),
        ("GET", "/.well-known/oauth-protected-resource/mcp"),
        ("GET", "/no-such-route"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
    ]:
        assert httpx.request(method, f"{served}{path}", headers=evil).status_code == 421, path
    # The allowed names still work, the redirect included.
    assert httpx.post(f"{served}/mcp/", json=TOOLS_LIST, headers={**key, **MCP_HEADERS}).status_code == 307
    assert httpx.get(f"{served}/healthz", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_a_port_wildcard_means_digits_and_the_whole_host_must_match(served: str) -> None:
    key = {"Authorization": f"Bearer {KEYS[0]}", **MCP_HEADERS}
    port = port_of(served)
    for host in [f"127.0.0.1:{port}@evil.example", f"127.0.0.1:{port}.evil.example", "127.0.0.1:", "127.0.0.1"]:
        answer = httpx.post(f"{served}/mcp", json=TOOLS_LIST, headers={**key, "Host": host})
        assert answer.status_code == 421, host
    assert httpx.post(f"{served}/mcp", json=TOOLS_LIST, headers=key).status_code == 200


def test_a_browser_page_is_answered_only_from_the_servers_own_origin(served: str) -> None:
    key = {"Authorization": f"Bearer {KEYS[0]}", **MCP_HEADERS}
    port = port_of(served)
    for origin in [f"http://127.0.0.1:{port + 1}", f"http://localhost:{free_port()}", f"http://127.0.0.1:{port}@x.y"]:
        answer = httpx.post(f"{served}/mcp", json=TOOLS_LIST, headers={**key, "Origin": origin})
        assert answer.status_code == 403, origin
    for origin in [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]:
        assert httpx.post(f"{served}/mcp", json=TOOLS_LIST, headers={**key, "Origin": origin}).status_code == 200


def test_probes_answer_orchestrators_that_address_a_replica_by_ip_or_send_no_host(served: str) -> None:
    port = port_of(served)
    assert httpx.get(f"{served}/healthz", headers={"Host": f"10.1.2.3:{port}"}).status_code == 200
    assert httpx.get(f"{served}/readyz", headers={"Host": "[fd00::7]:8000"}).status_code == 200
    # HAProxy's `option httpchk GET /readyz`: HTTP/1.0 without a Host.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
        assert _read_all(raw).startswith(b"HTTP/1.1 200")
    # Only the probes: the MCP endpoint wants a name it answers to.
    refused = httpx.post(f"{served}/mcp", json=TOOLS_LIST, headers={**MCP_HEADERS, "Host": f"10.1.2.3:{port}"})
    assert refused.status_code == 421


def test_readiness_names_the_part_and_leaves_the_reason_to_the_log(emulator: Emulator, tmp_path: Path) -> None:
    dead_port = free_port()  # nothing listens there
    env = http_env(emulator, tmp_path, ATLASCLOUD_STATE_URL=f"redis://127.0.0.1:{dead_port}/0")
    emulator.state.add_fault(
        Fault(path="/api/v1/models", kind="status", status=401, times=None, message="denied by gw-10.9.8.7")
    )
    log = tmp_path / "http.log"
    with http_server(env, log) as origin:
        answer = httpx.get(f"{origin}/readyz", timeout=20)
    assert answer.status_code == 503
    generic = "not ready (the server's log says why)"
    assert answer.json() == {"ready": False, "why": {"atlas": generic, "state": generic}}
    for detail in (str(dead_port), "Redis", "10.9.8.7", "127.0.0.1", "401"):
        assert detail not in answer.text, detail
    logged = log.read_text()
    assert f"Redis at 127.0.0.1:{dead_port}" in logged and "gw-10.9.8.7" in logged


# -- 13: a body that arrives too slowly ---------------------------------------------------------------------


def _read_all(raw: socket.socket) -> bytes:
    data = b""
    while chunk := raw.recv(65536):
        data += chunk
    return data


def test_a_stalled_body_gets_408_and_the_connection_closed(served: str) -> None:
    port = port_of(served)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEYS[0]}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + 8) as raw:
        raw.sendall(head.encode() + b'{"jsonrpc"')  # 10 of 1000 bytes, then nothing
        try:
            answer = _read_all(raw)  # to the end: the server must close the connection too
        except TimeoutError:
            pytest.fail("the server held a stalled body open (no answer, connection still open)")
    took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"did not arrive within 1 s" in answer
    assert BODY_TIMEOUT_S - 0.1 <= took < BODY_TIMEOUT_S + 5, took
    # A body that arrives in time, in pieces, is read as before.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        body = json.dumps(TOOLS_LIST).encode()
        raw.sendall(head.replace("1000", str(len(body))).replace("HTTP/1.1", "HTTP/1.0").encode() + body[:5])
        time.sleep(BODY_TIMEOUT_S / 2)
        raw.sendall(body[5:])
        assert b'"tools"' in _read_all(raw)


# -- 10: what a result may carry out ------------------------------------------------------------------------

NO_ID = "0" * 32
BIDI = "\u202e"


def hostile_outputs(origin: str, key: str) -> list[str]:
    """Output URLs on Atlas's origin (so they are fetched): one carries the payer's key in its query, one a
    right-to-left override that would make it read as a .png."""
    return [
        f"{origin}/emulator-storage/outputs/{NO_ID}/0.png?sig=abc&api_key={key}",
        f"{origin}/emulator-storage/outputs/{NO_ID}/photo{BIDI}gnp.exe",
    ]


def everything_shown(result: CallToolResult) -> str:
    links = [block.uri for block in result.content if isinstance(block, ResourceLink)]
    return text_of(result) + json.dumps(result.structured_content, ensure_ascii=False) + " ".join(links)


def assert_clean(shown: str, key: str) -> None:
    assert key not in shown and key.lower() not in shown.lower(), "the key is in the result"
    assert BIDI not in shown, "a bidi override is in the result"
    assert "[redacted]" in shown and "photo%E2%80%AEgnp.exe" in shown


@pytest.mark.parametrize("era", ERAS)
async def test_an_output_url_never_shows_the_key_or_a_bidi_override_in_memory(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    emulator.state.plan_next(PredictionPlan(output_urls=hostile_outputs(emulator.url, TEST_KEY)))
    settings = Settings(
        api_key=SecretStr(TEST_KEY), base_url=emulator.url, output_dir=tmp_path / "out", wait_seconds=10
    )
    async with Client(create_server(settings), mode=ERAS[era]) as client:
        result = await client.call_tool("generate_image", {"prompt": "a fox"})
        done = expect_done(result)
        assert_clean(everything_shown(result), TEST_KEY)
        checked = await client.call_tool("check_prediction", {"prediction_id": done["prediction_id"]})
    assert_clean(everything_shown(checked), TEST_KEY)


@pytest.mark.parametrize("era", ERAS)
async def test_over_http_a_result_names_no_server_path_and_never_the_callers_key(
    emulator: Emulator, tmp_path: Path, era: str
) -> None:
    out = tmp_path / "served-out"
    env = http_env(emulator, tmp_path, ATLASCLOUD_OUTPUT_DIR=str(out))
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, KEYS[2], era) as client:
            saved = await client.call_tool("generate_image", {"prompt": "a fox"})
            emulator.state.plan_next(PredictionPlan(output_urls=hostile_outputs(emulator.url, KEYS[2])))
            hostile = await client.call_tool("generate_image", {"prompt": "a hare"})
    done = expect_done(saved)
    name = f"{done['prediction_id']}-0.png"
    assert (out / name).is_file()  # saved on the server, as before
    assert done["outputs"][0]["saved_path"] == name
    assert f"saved to {name}" in text_of(saved)
    assert str(tmp_path) not in everything_shown(saved)
    assert not any(isinstance(b, ResourceLink) and b.uri.startswith("file:") for b in saved.content)
    expect_done(hostile)
    assert_clean(everything_shown(hostile), KEYS[2])


async def test_over_http_a_broken_state_store_is_not_named_by_its_path(emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state's folder should be")
    env = http_env(emulator, tmp_path, ATLASCLOUD_STATE_URL=f"sqlite:///{blocker / 'state.db'}")
    with http_server(env, tmp_path / "http.log") as origin:
        async with connect(origin, KEYS[3], "2025") as client:
            refused = await client.call_tool("generate_image", {"prompt": "a fox"})
    text = expect_error("generate_image", refused, "the server's state store")
    assert str(tmp_path) not in text and "not-a-folder" not in text


def test_escaping_leaves_languages_alone_and_survives_any_string() -> None:
    """Right-to-left marks, joiners and scripts are how languages are written; a URL's hidden characters, a lone
    surrogate among them, and a terminal's escape are not."""
    from atlas_mcp.server.outgoing import escape_controls  # here: before the fix the module did not exist

    prose = "مرحبا \u200f שלום 👩\u200d💻 ✓"
    assert escape_controls(prose) == prose
    shown = escape_controls("Output: http://x/a\u202eb\ud800c\u00a0d.png\n  note \u2066x\u2069 \x1b[31m")
    assert shown == "Output: http://x/a%E2%80%AEb%ED%A0%80c%C2%A0d.png\n  note \\u2066x\\u2069 \\u001b[31m"


_printable = st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"]) | st.just(" "))


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_printable | st.builds("http://x/{}".format, _printable), max_size=4))
def test_the_quick_look_at_printable_text_agrees_with_the_full_one(lines: list[str]) -> None:
    """Text whose every line is printable (any script, URLs among it) is handed back as it is without the full
    look (issue 26); a tab after it sends the same text down the full look, which must leave it alone too."""
    from atlas_mcp.server.outgoing import escape_controls

    text = "\n".join(lines)
    assert escape_controls(text) == text
    assert escape_controls(text + "\t") == text + "\t"


# -- 16: every stdio line gets an answer --------------------------------------------------------------------

DEEP = 1000
UNANSWERED_LINES: list[tuple[str, str, int, Any]] = [
    ("a null id", '{"jsonrpc":"2.0","id":null,"method":"tools/list"}', -32600, None),
    ("an object id", '{"jsonrpc":"2.0","id":{"a":1},"method":"tools/list"}', -32600, None),
    ("a fractional id", '{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}', -32600, None),
    ("a float id", '{"jsonrpc":"2.0","id":2.0,"method":"tools/list"}', -32600, None),
    ("a list id", '{"jsonrpc":"2.0","id":[3],"method":"tools/list"}', -32600, None),
    ("a boolean id", '{"jsonrpc":"2.0","id":true,"method":"tools/list"}', -32600, None),
    (
        f"params nested {DEEP} deep",
        '{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"x":' + "[" * DEEP + "]" * DEEP + "}}",
        -32700,
        3,
    ),
    (
        "objects nested 5000 deep, the id first",
        '{"id":"deep","jsonrpc":"2.0","method":"ping","params":' + '{"a":' * 5000 + "1" + "}" * 5000 + "}",
        -32700,
        "deep",
    ),
    ("a line nested 2000 deep with no id", "[" * 2000 + "]" * 2000, -32700, None),
]


def test_every_line_with_an_unusable_id_or_deep_nesting_is_answered(emulator: Emulator, tmp_path: Path) -> None:
    """A ping after each line: if the line went unanswered, the ping's answer comes first."""
    with raw_wire(emulator_env(emulator, tmp_path)) as wire:
        wire.initialize()
        answers = []
        for number, (_, line, _, _) in enumerate(UNANSWERED_LINES):
            wire.write(line)
            wire.send({"jsonrpc": "2.0", "id": f"ping-{number}", "method": "ping"})
            answers.append(wire.read())
            if answers[-1].get("id") != f"ping-{number}":
                assert wire.read()["id"] == f"ping-{number}"
        wire.send({"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
        still = wire.read()
    for (what, _, code, request_id), answer in zip(UNANSWERED_LINES, answers, strict=True):
        assert "error" in answer, (what, "no answer: the next line's came first", answer)
        assert answer["error"]["code"] == code, (what, answer)
        assert answer["id"] == request_id, (what, answer)
    assert still["id"] == 99 and still["result"]["tools"]


# -- 17: the emulator answers this machine only, and its controls take JSON only ----------------------------


def test_the_emulator_refuses_rebound_names_and_foreign_pages(emulator: Emulator) -> None:
    port = port_of(emulator.url)
    url = emulator.url
    emulator.state.plan_next(PredictionPlan(seconds=0))
    submitted = httpx.post(
        f"{url}/api/v1/model/generateImage",
        json={"model": "black-forest-labs/flux-schnell", "prompt": "a private prompt"},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )
    assert submitted.status_code == 200
    for host in [f"evil.example:{port}", f"127.0.0.1:{port}@evil.example", f"127.0.0.1:{port + 1}", "localhost"]:
        for path in ("/_emulator/requests", "/api/v1/model/history"):
            assert httpx.get(f"{url}{path}", headers={"Host": host}).status_code == 421, (host, path)
    fault = {"path": "/api/v1/models", "kind": "status", "status": 500}
    # A rebinding page's cross-origin text/plain POST (no preflight), and a page on another local port.
    as_text = httpx.post(f"{url}/_emulator/faults", content=json.dumps(fault), headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 415
    form = httpx.post(f"{url}/_emulator/reset", data={"x": "1"})
    assert form.status_code == 415
    foreign = httpx.post(f"{url}/_emulator/faults", json=fault, headers={"Origin": f"http://127.0.0.1:{port + 1}"})
    assert foreign.status_code == 403
    assert emulator.state.faults == []
    # The tests' own clients, the demo and doctor --emulator reach it by 127.0.0.1 and localhost, with JSON.
    assert httpx.get(f"{url}/_emulator/requests", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert httpx.post(f"{url}/_emulator/faults", json=fault).status_code == 200
    assert len(emulator.state.faults) == 1
