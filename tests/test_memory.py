"""Memory a hostile output set can cost the server: huge pictures that compress to almost nothing.

One 331 KB PNG of 8900² RGBA took the server to 1.37 GB RSS, four to 2.65 GB. The server runs over stdio as a
client starts it; its high-water mark (VmHWM) is read after the generation.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from mcp import Client
from PIL import Image

from atlas_mcp.emulator import Emulator, PredictionPlan

from .conftest import TEST_KEY
from .harness import ServerProcess, emulator_env, expect_done

# A server process's memory under pictures that take seconds each to make and decode (the integration lane).
pytestmark = [pytest.mark.anyio, pytest.mark.integration]

LIMIT_MIB = 300


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Pictures that are small on the wire and enormous decoded (made once: each takes seconds)."""
    folder = tmp_path_factory.mktemp("bombs")
    made = {}
    for name, mode, side in (("rgba-8900.png", "RGBA", 8900), ("rgb-6000.png", "RGB", 6000)):
        path = folder / name
        Image.new(mode, (side, side), (200, 30, 30, 128)[: len(mode)]).save(path, optimize=False)
        made[name] = path.read_bytes()
    return made


def _on_the_origin(emulator: Emulator, name: str, data: bytes) -> str:
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as http:
        answer = http.post("/api/v1/model/uploadMedia", files={"file": (name, data, "image/png")})
    url: str = answer.json()["data"]["download_url"]
    return url


@pytest.mark.parametrize("name", ["rgba-8900.png", "rgb-6000.png"])
async def test_four_huge_pictures_keep_the_server_under_300_mib(
    emulator: Emulator, tmp_path: Path, bombs: dict[str, bytes], name: str, figures: list[str]
) -> None:
    url = _on_the_origin(emulator, name, bombs[name])
    emulator.state.plan_next(PredictionPlan(seconds=0, output_urls=[f"{url}#{n}" for n in range(4)]))
    server = ServerProcess(emulator_env(emulator, tmp_path, ATLASCLOUD_LOG_LEVEL="WARNING"), tmp_path / "stderr.log")
    async with Client(server.transport()) as client:
        result = await client.call_tool("generate_image", {"prompt": "x", "num_images": 4})
        peak = server.peak_rss_kib() / 1024
    outputs = expect_done(result)["outputs"]
    assert all(output["saved_path"] for output in outputs)  # the files are kept whatever happens to previews
    side = int(name.split("-")[1].split(".")[0])
    assert all((output["width"], output["height"]) == (side, side) for output in outputs)
    if name.startswith("rgba-8900"):  # 317 MB decoded: more than any decode may take
        assert all(not output["preview"] and "more than the server allows" in output["note"] for output in outputs)
    else:  # 144 MB decoded: previewed, one at a time
        assert all(output["preview"] for output in outputs)
    figures.append(f"4 outputs of {name} ({len(bombs[name]) // 1024} KiB each): server peak RSS {peak:.0f} MiB")
    assert peak < LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
