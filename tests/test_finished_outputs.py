"""A finished prediction is downloaded once (issue 26): what its outputs were found to be (facts, saved paths,
previews) is kept, so a second check_prediction of it, or a task polled again, asks Atlas's storage for nothing."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client

from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server

from .conftest import settings_for
from .harness import expect_done

pytestmark = pytest.mark.anyio


def _output_fetches(emulator: Emulator) -> int:
    return sum(1 for r in emulator.state.requests if r.path.startswith("/emulator-storage/outputs/"))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_second_check_of_a_finished_prediction_downloads_nothing(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), mode=mode) as client:
        made = expect_done(await client.call_tool("generate_image", {"prompt": "a heron", "num_images": 2}))
        prediction_id = made["prediction_id"]
        first = await client.call_tool("check_prediction", {"prediction_id": prediction_id})
        fetched = _output_fetches(emulator)
        await anyio.sleep(1.1)  # Atlas signs the links afresh on each read: the next read's expire a second later
        second = await client.call_tool("check_prediction", {"prediction_id": prediction_id})
    assert fetched > 0
    assert _output_fetches(emulator) == fetched, "the second check downloaded the outputs again"
    assert second.structured_content is not None and first.structured_content is not None
    old, new = first.structured_content["outputs"], second.structured_content["outputs"]
    assert [o["url"] for o in new] != [o["url"] for o in old]  # this read's links, not the first read's
    assert [{**o, "url": None} for o in new] == [{**o, "url": None} for o in old]
    assert [b.type for b in second.content] == [b.type for b in first.content]  # the previews, still shown


async def test_after_a_restart_the_saved_files_answer_instead_of_a_download(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path)
    async with Client(create_server(settings)) as client:
        made = expect_done(await client.call_tool("generate_image", {"prompt": "a heron", "num_images": 2}))
    fetched = _output_fetches(emulator)
    async with Client(create_server(settings)) as client:  # a new process: nothing in memory
        again = expect_done(await client.call_tool("check_prediction", {"prediction_id": made["prediction_id"]}))
    assert _output_fetches(emulator) == fetched, "the saved files were downloaded again"
    assert [o["saved_path"] for o in again["outputs"]] == [o["saved_path"] for o in made["outputs"]]
    assert [o["size_bytes"] for o in again["outputs"]] == [o["size_bytes"] for o in made["outputs"]]
    assert all(o["preview"] for o in again["outputs"])


async def test_a_saved_file_that_is_not_what_its_name_says_is_fetched_again(emulator: Emulator, tmp_path: Path) -> None:
    settings = settings_for(emulator, tmp_path)
    async with Client(create_server(settings)) as client:
        made = expect_done(await client.call_tool("generate_image", {"prompt": "a heron"}))
    saved = Path(made["outputs"][0]["saved_path"])
    original = saved.read_bytes()
    saved.write_bytes(b"<html>not a picture</html>")
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(original)
    fetched = _output_fetches(emulator)
    async with Client(create_server(settings)) as client:
        again = expect_done(await client.call_tool("check_prediction", {"prediction_id": made["prediction_id"]}))
    assert _output_fetches(emulator) == fetched + 1
    assert saved.read_bytes() == original  # put right from Atlas
    saved.unlink()
    saved.symlink_to(elsewhere)  # a link in the folder is never followed
    async with Client(create_server(settings)) as client:
        expect_done(await client.call_tool("check_prediction", {"prediction_id": made["prediction_id"]}))
    assert _output_fetches(emulator) == fetched + 2
    assert again["outputs"][0]["preview"]
