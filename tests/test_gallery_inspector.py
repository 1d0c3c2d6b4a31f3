"""The gallery in a real MCP Apps host: the official MCP Inspector's web client (from npm, on Node 22), Apps tab,
in headless Chromium, against our server over stdio and over HTTP with an Authorization header.

The Inspector wraps our document in its own ``<head>`` (so only its policy, built from ``_meta.ui.csp``, applies)
and loads it in a sandbox iframe on a second loopback port; these tests look inside that frame.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from atlas_mcp.emulator import Emulator

from .harness import CONSOLE_SCRIPT, emulator_env
from .test_gallery import chromium
from .test_http import KEYS, http_env, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

INSPECTOR_VERSION = "2.12.0"
INSPECTOR = [
    "npx", "-y", "-p", "node@22", "-p", f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}", "--", "mcp-inspector",
]  # fmt: skip
ARGUMENTS = {"prompt": "a red fox in the snow", "num_images": 4, "seed": 42}
SCREENSHOT = Path(__file__).resolve().parent.parent / ".artifacts" / "gallery-inspector.png"

if shutil.which("npx") is None or not (os.environ.get("ATLASCLOUD_TEST_CHROMIUM") or shutil.which("chromium")):
    pytest.skip("the Inspector test needs npx (`apt-get install npm`) and Chromium (`apt-get install chromium`)",
                allow_module_level=True)  # fmt: skip


@contextmanager
def inspector(tmp_path: Path, *args: str) -> Iterator[str]:
    """The Inspector's web client on loopback; yields its URL with the session token."""
    log = tmp_path / "inspector.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*INSPECTOR, "--web", *args],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ
            | {"MCP_INSPECTOR_SECRET_STORE": "memory", "BROWSER": "none", "MCP_AUTO_OPEN_ENABLED": "false"},
            start_new_session=True,  # npx starts node under it: the whole group goes at the end
        )
    try:
        deadline = time.monotonic() + 240  # the first run downloads the Inspector and Node 22
        while not (found := re.search(r"http://127\.0\.0\.1:6274\?MCP_INSPECTOR_API_TOKEN=\w+", log.read_text())):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the Inspector did not start in 240 s:\n" + log.read_text()
            time.sleep(0.2)
        yield found.group(0)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


@asynccontextmanager
async def apps_tab(url: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """The Inspector in Chromium, connected, on the Apps tab; yields the page and our frame's console errors."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []

            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            await page.goto(url)
            await page.get_by_role("switch").first.check(force=True)
            await page.get_by_text("Connected", exact=True).first.wait_for(timeout=60_000)
            await page.get_by_text("Apps", exact=True).first.click()
            yield page, problems
        finally:
            await browser.close()


async def open_generate_image(page: Any, arguments: dict[str, Any]) -> Any:
    """Fill generate_image's arguments as JSON and open the app; returns the gallery's frame."""
    await page.get_by_text("Generate image", exact=True).first.click()
    await page.get_by_role("switch", name="Edit as JSON").check(force=True)
    box = page.get_by_role("textbox", name=re.compile("^Arguments JSON"))
    await box.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(json.dumps(arguments))
    await page.get_by_role("button", name="Open App").click()
    deadline = time.monotonic() + 60
    while not (frames := [frame for frame in page.frames if frame.url == "about:srcdoc"]):
        assert time.monotonic() < deadline, "the Inspector never loaded the gallery"
        await page.wait_for_timeout(200)
    return frames[0]


async def decoded_widths(frame: Any, count: int) -> list[int]:
    images = frame.locator("section.generation").first.locator("img")
    await images.nth(count - 1).wait_for(timeout=60_000)
    widths: list[int] = await images.evaluate_all("i => Promise.all(i.map(x => x.decode().then(() => x.naturalWidth)))")
    return widths


async def check_the_gallery(page: Any, problems: list[str], sent: Any, *, screenshot: bool = False) -> None:
    frame = await open_generate_image(page, ARGUMENTS)
    widths = await decoded_widths(frame, 4)
    assert len(widths) == 4 and all(width > 0 for width in widths), widths
    if screenshot:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT))
    before = sent()
    await frame.get_by_role("button", name="Vary").first.click()
    await frame.locator("section.generation").nth(1).wait_for(timeout=60_000)
    assert len(await decoded_widths(frame, 4)) == 4
    assert sent() == before + 1  # Vary went through the host as one tools/call
    refused = [problem for problem in problems if "Refused" in problem or problem.startswith("page error")]
    assert not refused, problems


def submits(emulator: Emulator) -> int:
    return len([r for r in emulator.state.requests if r.path.endswith("/generateImage")])


async def test_the_inspector_renders_the_gallery_over_stdio(emulator: Emulator, tmp_path: Path) -> None:
    config = {"mcpServers": {"atlas": {"command": CONSOLE_SCRIPT, "args": [], "env": emulator_env(emulator, tmp_path)}}}
    (tmp_path / "inspector.json").write_text(json.dumps(config))
    with inspector(tmp_path, "--config", str(tmp_path / "inspector.json"), "--server", "atlas") as url:
        async with apps_tab(url) as (page, problems):
            await check_the_gallery(page, problems, lambda: submits(emulator), screenshot=True)
            # Outputs sent inline (no URL at all): the previews show, because _meta.ui.csp grants data:.
            emulator.state.config.profile = "base64-outputs"
            await page.get_by_role("button", name="Back to Input").click()
            frame = await open_generate_image(page, {**ARGUMENTS, "seed": 7})
            widths = await decoded_widths(frame, 4)
            assert len(widths) == 4 and all(width > 0 for width in widths), widths
            sources = await frame.locator("section img").evaluate_all("i => i.map(x => x.src)")
            assert all(source.startswith("data:image/") for source in sources)
            assert not [p for p in problems if "Refused" in p or p.startswith("page error")], problems


async def test_the_inspector_renders_the_gallery_over_http_with_a_header(emulator: Emulator, tmp_path: Path) -> None:
    with http_server(http_env(emulator, tmp_path), tmp_path / "http.log") as origin:
        header = f"Authorization: Bearer {KEYS[2]}"
        args = ("--transport", "http", "--server-url", f"{origin}/mcp", "--header", header)
        with inspector(tmp_path, *args) as url:
            async with apps_tab(url) as (page, problems):
                await check_the_gallery(page, problems, lambda: submits(emulator))
    paid = [r for r in emulator.state.requests if r.path.endswith("/generateImage")]
    assert paid and all(r.headers.get("authorization") == f"Bearer {KEYS[2]}" for r in paid)


async def test_a_call_the_inspector_abandons_is_said_so_within_70_seconds(emulator: Emulator, tmp_path: Path) -> None:
    """Nobody answers the price question: the Inspector gives up on the call at 60 s and tells the view nothing."""
    env = emulator_env(emulator, tmp_path, ATLASCLOUD_CONFIRM_ABOVE_USD="0")
    config = {"mcpServers": {"atlas": {"command": CONSOLE_SCRIPT, "args": [], "env": env}}}
    (tmp_path / "inspector.json").write_text(json.dumps(config))
    with inspector(tmp_path, "--config", str(tmp_path / "inspector.json"), "--server", "atlas") as url:
        async with apps_tab(url) as (page, _):
            started = time.monotonic()
            frame = await open_generate_image(page, {"prompt": "a paper boat on a pond"})
            await frame.locator("section.abandoned").wait_for(timeout=80_000)
            assert time.monotonic() - started < 75
            assert "has probably given up waiting" in await frame.locator("section.abandoned").inner_text()
            # The Inspector names no tool in hostContext.toolInfo, and guessing which paid tool to run again would
            # be wrong: there the note tells the user to ask the assistant instead (test_gallery_hosts covers it).
            assert await frame.get_by_role("button", name="Run again").count() == 0
    assert submits(emulator) == 0  # nobody said yes, nothing was paid
