"""The gallery as real hosts render it: the MCP Inspector's way of wrapping the document, a host policy built
from ``_meta.ui.csp`` (the page's own policy ignored), inline previews granted or blocked, and a call the host
abandons without telling the view.

The host page here plays the Inspector's part: it builds ``<html><head><meta CSP=host policy></head><body>`` +
the whole gallery document + ``</body></html>`` and loads that into a sandboxed iframe, so Chromium ignores the
page's own ``<meta>`` policy (outside ``<head>``) exactly as it does in the Inspector. Tool calls the view makes go
to the real server in memory, against the emulator.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server
from atlas_mcp.server.gallery import GALLERY_URI

from .harness import expect_done
from .test_gallery import APPS, chromium, wire
from .test_server import settings_for

pytestmark = pytest.mark.anyio

BASE64 = "base64-outputs"

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>body{margin:0} iframe{border:0;width:900px;height:1200px}</style></head>
<body><iframe id="view" sandbox="allow-scripts"></iframe><script>
window.toolCalls = [];
const frame = document.getElementById("view");
function reply(message) { frame.contentWindow.postMessage(Object.assign({jsonrpc: "2.0"}, message), "*"); }
window.input = (input) => reply({method: "ui/notifications/tool-input", params: {arguments: input}});
window.result = (result) => reply({method: "ui/notifications/tool-result", params: result});
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) return;
  const message = event.data;
  if (message.method === "ui/initialize") {
    reply({id: message.id, result: Object.assign({protocolVersion: "2026-01-26",
      hostInfo: {name: "inspector-like", version: "1"}}, window.initializeAnswer)});
  } else if (message.method === "ui/notifications/initialized") {
    window.initialized = true;
  } else if (message.method === "tools/call") {
    window.toolCalls.push(message.params);
    reply({id: message.id, result: await window.callServer(message.params.name, message.params.arguments)});
  }
});
</script></body></html>"""


def host_policy(csp: dict[str, Any]) -> str:
    """The policy a host builds from ``_meta.ui.csp``: inline script and style, media only from resourceDomains."""
    resources = " ".join(csp.get("resourceDomains") or []) or "'none'"
    connect = " ".join(csp.get("connectDomains") or []) or "'none'"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'unsafe-inline'",
            "style-src 'unsafe-inline'",
            f"img-src {resources}",
            f"media-src {resources}",
            f"connect-src {connect}",
        )
    )


def wrapped(document: str, policy: str) -> str:
    """The document the way the MCP Inspector serves it: the host's head, then ours whole inside its body."""
    head = f'<html><head><meta http-equiv="Content-Security-Policy" content="{policy}"></head><body>'
    return head + document + "</body></html>"


@asynccontextmanager
async def inspector_page(
    client: Client,
    *,
    grant_inline: bool = True,
    declare: bool = True,
    abandon_after_ms: int | None = None,
    tool: str | None = "generate_image",
) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page hosting the gallery wrapped the Inspector's way; yields it and the frame's console errors.

    ``grant_inline`` False plays a host that leaves ``data:`` out of its policy; ``declare`` says whether it
    tells the view so in ``hostCapabilities.sandbox.csp``."""
    from playwright.async_api import async_playwright

    content = (await client.read_resource(GALLERY_URI)).contents[0]
    document = getattr(content, "text", "")
    csp = dict((content.meta or {})["ui"]["csp"])
    if not grant_inline:
        csp["resourceDomains"] = [domain for domain in csp["resourceDomains"] if domain != "data:"]
    if abandon_after_ms is not None:
        document = document.replace('<html lang="en">', f'<html lang="en" data-abandon-after-ms="{abandon_after_ms}">')
    answer: dict[str, Any] = {"hostCapabilities": {"serverTools": {}}, "hostContext": {"theme": "light"}}
    if declare:
        answer["hostCapabilities"]["sandbox"] = {"csp": csp}
    if tool:
        answer["hostContext"]["toolInfo"] = {"tool": {"name": tool}}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 920, "height": 1200})
            await page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

            async def call_server(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                return wire(await client.call_tool(name, arguments))

            await page.expose_function("callServer", call_server)
            await page.set_content(HOST_PAGE)
            await page.evaluate("answer => { window.initializeAnswer = answer; }", answer)
            source = wrapped(document, host_policy(csp))
            await page.eval_on_selector("#view", "(frame, html) => { frame.srcdoc = html; }", source)
            await page.wait_for_function("window.initialized === true", timeout=10_000)
            yield page, problems
        finally:
            await browser.close()


def violations(problems: list[str]) -> list[str]:
    """Console errors that are CSP refusals or page errors (the ignored outer-``<meta>`` notice is expected)."""
    return [problem for problem in problems if "Refused" in problem or problem.startswith("page error")]


async def _deliver(page: Any, arguments: dict[str, Any], result: dict[str, Any]) -> None:
    await page.evaluate("([input, result]) => { window.input(input); window.result(result); }", [arguments, result])


async def test_in_the_inspectors_wrapping_url_outputs_show_and_the_price_is_said_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a red fox in the snow", "num_images": 4, "seed": 42}
        result = await client.call_tool("generate_image", arguments)
        expect_done(result)
        async with inspector_page(client) as (page, problems):
            await _deliver(page, arguments, wire(result))
            view = page.frame_locator("#view")
            images = view.locator("section img")
            await images.nth(3).wait_for()
            decoded = await images.evaluate_all(
                "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth)))"
            )
            assert len(decoded) == 4 and all(width > 0 for width in decoded), decoded
            policies = await images.evaluate_all("imgs => imgs.map(img => img.referrerPolicy)")
            assert policies == ["no-referrer"] * 4
            captions = await view.locator("figcaption .meta").all_text_contents()
            assert all(re.fullmatch(r"\d+×\d+ · image/\w+ · [\d.]+ \w?i?B · seed 42", c) for c in captions), captions
            assert (await view.locator("section").inner_text()).count("$0.012") == 1  # once, for the whole result
            assert await view.locator("label.prompt").count() == 1  # outputs with URLs can be used as input
            assert not violations(problems), problems


async def test_base64_outputs_preview_where_the_host_grants_data(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.profile = BASE64
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a lighthouse at dusk", "num_images": 4}
        result = await client.call_tool("generate_image", arguments)
        outputs = expect_done(result)["outputs"]
        assert not any(output.get("url") for output in outputs), outputs  # nothing to link to: previews only
        async with inspector_page(client) as (page, problems):
            await _deliver(page, arguments, wire(result))
            view = page.frame_locator("#view")
            images = view.locator("section img")
            await images.nth(3).wait_for()
            decoded = await images.evaluate_all(
                "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth)))"
            )
            assert len(decoded) == 4 and all(width > 0 for width in decoded), decoded
            assert all(src.startswith("data:image/") for src in await images.evaluate_all("i => i.map(x => x.src)"))
            assert await view.locator("label.prompt").count() == 0  # no output has a URL to use as input
            assert not violations(problems), problems


@pytest.mark.parametrize("declare", [True, False], ids=["host-says-so", "host-silent"])
async def test_a_host_that_blocks_inline_previews_is_said_so_visibly(
    emulator: Emulator, tmp_path: Path, declare: bool
) -> None:
    emulator.state.config.profile = BASE64
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a lighthouse at dusk", "num_images": 2}
        result = await client.call_tool("generate_image", arguments)
        expect_done(result)
        async with inspector_page(client, grant_inline=False, declare=declare) as (page, problems):
            await _deliver(page, arguments, wire(result))
            view = page.frame_locator("#view")
            notes = view.locator(".blocked")
            await notes.nth(1).wait_for()
            for text in await notes.all_text_contents():
                assert text.startswith("This host blocks inline previews: ")
            assert await view.locator("section img").count() == 0  # no broken image left behind
            if declare:  # told up front, the view never even tries (so the host logs no refusal)
                assert not violations(problems), problems


async def test_a_call_the_host_abandons_is_said_so_and_can_be_run_again(emulator: Emulator, tmp_path: Path) -> None:
    server = create_server(settings_for(emulator, tmp_path))
    async with (
        Client(server, extensions=[APPS]) as client,
        inspector_page(client, abandon_after_ms=1500) as (page, problems),
    ):
        arguments = {"prompt": "a paper boat on a pond", "seed": 3}
        await page.evaluate("input => window.input(input)", arguments)  # the result never comes
        view = page.frame_locator("#view")
        note = view.locator("section.abandoned")
        await note.wait_for(timeout=5_000)
        assert "No result arrived 2 s after the call started" in await note.inner_text()
        await note.get_by_role("button", name="Run again").click()
        await view.locator("section.generation:not(.abandoned) img").first.wait_for(timeout=15_000)
        assert await page.evaluate("window.toolCalls") == [{"name": "generate_image", "arguments": arguments}]
        assert not violations(problems), problems


async def test_a_result_in_time_leaves_no_abandoned_note(emulator: Emulator, tmp_path: Path) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a quiet harbour"}
        result = await client.call_tool("generate_image", arguments)
        async with inspector_page(client, abandon_after_ms=1000) as (page, _):
            await _deliver(page, arguments, wire(result))
            view = page.frame_locator("#view")
            await view.locator("section img").first.wait_for()
            await page.wait_for_timeout(1500)
            assert await view.locator("section.abandoned").count() == 0
