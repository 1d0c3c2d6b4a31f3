"""The official MCP conformance suite (npm ``@modelcontextprotocol/conformance``, Node 22 through npx) against the HTTP
server, for the scenarios that apply to it; docs/reliability.md records which those are and why the rest do not.

The suite's client sends no ``Authorization``, and this server always wants one: HAProxy in front adds the caller's
header, as a team's proxy could. Most server scenarios call the suite's own test tools, prompts and resources
(``test_simple_text``, ``json_schema_2020_12_tool``, ``test_reconnection``...), which only its reference server has;
its auth scenarios test clients, not servers.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from atlas_mcp.emulator import Emulator

from .conftest import free_port, require_binary
from .test_http import http_env, http_server

pytestmark = pytest.mark.e2e

CONFORMANCE = ["npx", "-y", "-p", "node@22", "-p", "@modelcontextprotocol/conformance@0.1.16", "--", "conformance"]
APPLIES = (
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",  # an unknown tool: a tool error, not a crash
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
)
PROXY = """\
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend conformance
    bind 127.0.0.1:{front}
    http-request set-header Authorization "Bearer sk-conformance-0123456789abcdef"
    default_backend server
backend server
    server s 127.0.0.1:{port}
"""


@pytest.mark.usefixtures("npx")
def test_the_conformance_scenarios_that_apply_to_this_server_pass(emulator: Emulator, tmp_path: Path) -> None:
    haproxy = require_binary("haproxy", install="apt-get install haproxy")
    front = free_port()
    # The suite checks that localhost names on the port it uses are accepted: that port is the proxy's.
    allowed = f"127.0.0.1:{front},localhost:{front}"
    with http_server(
        http_env(emulator, tmp_path, ATLASCLOUD_HTTP_ALLOWED_HOSTS=allowed), tmp_path / "http.log"
    ) as origin:
        config = tmp_path / "proxy.cfg"
        config.write_text(PROXY.format(front=front, port=origin.rsplit(":", 1)[1]))
        proxy = subprocess.Popen(
            [haproxy, "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{front}/healthz", timeout=1, headers={"Host": f"127.0.0.1:{front}"})
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            ran = subprocess.run(
                [*CONFORMANCE, "server", "--url", f"http://127.0.0.1:{front}/mcp", "--suite", "all"],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
            )
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
    verdicts = {name: mark for mark, name in re.findall(r"^([✓✗]) ([a-z0-9-]+):", ran.stdout, re.MULTILINE)}
    assert verdicts, ran.stdout + ran.stderr
    assert {name: verdicts.get(name) for name in APPLIES} == dict.fromkeys(APPLIES, "✓"), ran.stdout
