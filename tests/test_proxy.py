"""Behind a proxy: the server honours HTTP(S)_PROXY and NO_PROXY, as users on corporate networks need.

The proxy is a real one, tinyproxy (Debian's package; .ci/run installs it), in front of the emulator on loopback.
It marks what it forwards with a Via header, which the emulator records.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from atlas_mcp.emulator import Emulator

from .conftest import require_binary
from .harness import ServerProcess, emulator_env, expect_done

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[str]:
    executable = require_binary("tinyproxy", install="apt-get install tinyproxy")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nAllow 127.0.0.1\n"
        f'LogFile "{tmp_path / "tinyproxy.log"}"\nLogLevel Connect\nViaProxyName "corporate-proxy"\n'
    )
    log = tmp_path / "tinyproxy.err"
    with log.open("wb") as errors, subprocess.Popen([executable, "-d", "-c", str(config)], stderr=errors) as process:
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert process.poll() is None, f"tinyproxy exited: {log.read_text()}"
                    assert time.monotonic() < deadline, "tinyproxy did not start listening"
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


async def generate(emulator: Emulator, tmp_path: Path, **env: str) -> None:
    server = ServerProcess(emulator_env(emulator, tmp_path, **env), tmp_path / "stderr.log")
    async with Client(server.transport()) as client:
        expect_done(await client.call_tool("generate_image", {"prompt": "through the proxy", "size": "256*256"}))


async def test_every_request_goes_through_the_proxy_and_the_key_only_to_atlas(
    emulator: Emulator, tmp_path: Path, proxy: str
) -> None:
    await generate(emulator, tmp_path, HTTP_PROXY=proxy, NO_PROXY="")
    requests = emulator.state.requests
    kinds = {"catalogue": "/api/v1/models", "quote": "/api/v1/model/calculate", "submit": "/api/v1/model/generate"}
    kinds |= {"poll or read": "/api/v1/model/prediction/", "output": "/emulator-storage/outputs/"}
    for kind, prefix in kinds.items():
        seen = [r for r in requests if r.path.startswith(prefix)]
        assert seen, f"no {kind} request reached Atlas"
        assert all("corporate-proxy" in r.headers.get("via", "") for r in seen), (kind, seen)
    assert all("authorization" in r.headers for r in requests if r.path.startswith("/api/v1/model/"))
    assert not [r for r in requests if r.path.startswith("/emulator-storage/") and "authorization" in r.headers]


async def test_no_proxy_is_honoured(emulator: Emulator, tmp_path: Path, proxy: str) -> None:
    await generate(emulator, tmp_path, HTTP_PROXY=proxy, NO_PROXY="localhost,127.0.0.1")
    assert emulator.state.requests and not [r for r in emulator.state.requests if "via" in r.headers]
