"""The gallery (MCP Apps view) in a real browser, and its wire: what tools/list, resources/read and results carry.

The browser test loads the gallery HTML, exactly as ``resources/read`` returns it, into a sandboxed iframe of a
small host page. The page plays the host's side of the Apps bridge over ``postMessage``; the ``tools/call``
requests the view makes go to the real server (in memory, against the emulator) through a function the test
exposes to the page, so Vary, Use as input and polling are the server's real answers, not canned ones.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.extension import advertise
from mcp_types import CallToolResult

from atlas_mcp.emulator import Emulator
from atlas_mcp.server import create_server
from atlas_mcp.server.gallery import GALLERY_URI

from .conftest import require_binary
from .harness import CONSOLE_SCRIPT, emulator_env, expect_done, text_of
from .test_server import settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

APPS = advertise("io.modelcontextprotocol/ui", {"mimeTypes": ["text/html;profile=mcp-app"]})
VIDEO = "alibaba/wan-2.2/t2v-480p"
AUDIO = "minimax/speech-2.5-hd"
GALLERY_TOOLS = {"generate_image", "generate_video", "generate_audio", "check_prediction"}
SCREENSHOTS = Path(__file__).resolve().parent.parent / ".artifacts"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "atlas"

HOST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>body{margin:0;background:#101418} iframe{border:0;width:900px;height:1400px}
</style></head><body><iframe id="view" sandbox="allow-scripts"></iframe><script>
// The host side of the MCP Apps bridge, as a client such as Claude renders a view: handshake, theme, the
// tool's input and result, and tools/call proxied to the server (here: the test's exposed callServer).
window.received = [];
window.toolCalls = [];
const frame = document.getElementById("view");
function reply(message) { frame.contentWindow.postMessage(Object.assign({jsonrpc: "2.0"}, message), "*"); }
window.deliver = async (input, result) => {
  await window.delivered(result);
  reply({method: "ui/notifications/tool-input", params: {arguments: input}});
  reply({method: "ui/notifications/tool-result", params: result});
};
window.addEventListener("message", async (event) => {
  if (event.source !== frame.contentWindow) return;
  const message = event.data;
  window.received.push(message.method || "response");
  if (message.method === "ui/initialize") {
    reply({id: message.id, result: {protocolVersion: "2026-01-26", hostInfo: {name: "test-host", version: "1"},
      hostCapabilities: {serverTools: {}}, hostContext: {theme: "dark", displayMode: "inline",
        styles: {variables: {"--color-background-primary": "rgb(16, 20, 24)",
                             "--color-text-primary": "rgb(250, 250, 250)"}}}}});
  } else if (message.method === "ui/notifications/initialized") {
    window.initialized = true;
  } else if (message.method === "tools/call") {
    window.toolCalls.push(message.params);
    const answer = await window.callServer(message.params.name, message.params.arguments);
    reply({id: message.id, result: answer});
  }
});
</script></body></html>"""


def wire(result: CallToolResult) -> dict[str, Any]:
    """A result as the host receives it on the wire (camelCase, as JSON)."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def chromium() -> str:
    return os.environ.get("ATLASCLOUD_TEST_CHROMIUM") or require_binary(
        "chromium", "chromium-browser", install="apt-get install chromium"
    )


@asynccontextmanager
async def gallery_page(client: Client, calls: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[Any]:
    """A browser page hosting the gallery (as resources/read serves it); the view's tool calls reach ``client``."""
    from playwright.async_api import async_playwright

    html = (await client.read_resource(GALLERY_URI)).contents[0]
    assert getattr(html, "text", None)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 920, "height": 1400})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            # Tests never touch the internet: anything but loopback is refused before it leaves the browser.
            await page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

            given: set[str] = set()

            def delivered(result: dict[str, Any]) -> dict[str, Any]:
                outputs = (result.get("structuredContent") or {}).get("outputs") or []
                given.update(output["url"] for output in outputs if output.get("url"))
                return result

            async def call_server(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
                calls.append((name, arguments))
                return delivered(wire(await client.call_tool(name, arguments)))

            await page.expose_function("callServer", call_server)
            await page.expose_function("delivered", delivered)
            await page.set_content(HOST_PAGE)
            await page.eval_on_selector("#view", "(frame, html) => { frame.srcdoc = html; }", html.text)
            await page.wait_for_function("window.initialized === true", timeout=10_000)
            yield page
            assert not [e for e in errors if "Content Security Policy" in e], errors
            assert set(requested) <= given, set(requested) - given  # it loads nothing but the outputs it was given
        finally:
            await browser.close()


async def test_the_gallery_shows_four_images_varies_and_uses_one_as_input(emulator: Emulator, tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a red fox in the snow", "num_images": 4, "seed": 42}
        result = await client.call_tool("generate_image", arguments)
        expect_done(result)
        urls = [output["url"] for output in result.structured_content["outputs"]]  # type: ignore[index]
        async with gallery_page(client, calls) as page:
            await page.evaluate("([input, result]) => window.deliver(input, result)", [arguments, wire(result)])
            view = page.frame_locator("#view")
            images = view.locator("section img")
            await images.nth(3).wait_for()
            widths: list[Any] = []
            with anyio.move_on_after(15):  # the <img> exist at once; the browser loads their files in its own time
                while not (len(widths) == 4 and all(widths)):
                    widths = await images.evaluate_all("imgs => imgs.map(img => img.complete && img.naturalWidth)")
                    await anyio.sleep(0.05)
            assert len(widths) == 4 and all(width and width > 0 for width in widths), widths
            sources = await images.evaluate_all("imgs => imgs.map(img => img.src)")
            assert sources == urls  # the full-size URLs, straight from the structured content
            captions = await view.locator("figcaption .meta").all_text_contents()
            assert all(re.search(r"\d+×\d+ · .*iB · seed 42$", caption) for caption in captions), captions
            background = await view.locator("body").evaluate("body => getComputedStyle(body).backgroundColor")
            assert background == "rgb(16, 20, 24)"  # the host's theme variable, applied

            SCREENSHOTS.mkdir(exist_ok=True)
            await page.screenshot(
                path=str(SCREENSHOTS / "gallery.png"), clip={"x": 0, "y": 0, "width": 900, "height": 400}
            )

            # Keyboard: the first image opens full size with Enter and closes with Escape.
            await view.locator("figure .open").first.focus()
            await page.keyboard.press("Enter")
            assert await view.locator("dialog#viewer").evaluate("dialog => dialog.open")
            await page.keyboard.press("Escape")
            assert not await view.locator("dialog#viewer").evaluate("dialog => dialog.open")

            # Vary, from the keyboard: the same request with a new seed, through the server's spend rules.
            await view.get_by_role("button", name="Vary").focus()
            await page.keyboard.press("Enter")
            await view.locator("section.generation").nth(1).wait_for()
            await view.locator("section.generation").first.locator("img").nth(3).wait_for()
            name, sent = calls[0]
            assert name == "generate_image"
            assert sent.pop("seed") != 42
            assert sent == {
                "prompt": "a red fox in the snow",
                "model": "black-forest-labs/flux-schnell",
                "num_images": 4,
            }

            # Use as input: image-to-image from the second output of the first generation.
            second = view.locator("section.generation").nth(1)
            await second.locator("label.prompt input").fill("the same fox, in watercolour")
            await second.get_by_role("button", name="Use as input").nth(1).click()
            await view.locator("section.generation").nth(2).wait_for()
            name, sent = calls[1]
            assert name == "generate_image"
            assert sent == {
                "prompt": "the same fox, in watercolour",
                "image": urls[1],
                "model": "black-forest-labs/flux-schnell",
            }
            newest = view.locator("section.generation").first
            await newest.locator("img").first.wait_for()
            assert "Use as input" in await newest.inner_text()


async def test_a_running_prediction_is_polled_until_it_is_done(emulator: Emulator, tmp_path: Path) -> None:
    emulator.state.config.prediction_seconds = 5
    calls: list[tuple[str, dict[str, Any]]] = []
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        arguments = {"prompt": "a lighthouse at dusk", "wait": False}
        started = await client.call_tool("generate_image", arguments)
        assert started.structured_content is not None and started.structured_content["phase"] == "running"
        prediction_id = started.structured_content["prediction_id"]
        async with gallery_page(client, calls) as page:
            await page.evaluate("([input, result]) => window.deliver(input, result)", [arguments, wire(started)])
            view = page.frame_locator("#view")
            await view.get_by_text(f"Prediction {prediction_id} is").wait_for()
            image = view.locator("section img").first
            await image.wait_for(timeout=30_000)
            assert await image.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    assert calls, "the view never called check_prediction"
    assert all(call == ("check_prediction", {"prediction_id": prediction_id}) for call in calls), calls


async def test_video_and_audio_play_in_their_own_elements(emulator: Emulator, tmp_path: Path) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    emulator.state.config.profile = "plain"  # files by URL: the speech model's own profile sends them inline
    async with Client(create_server(settings_for(emulator, tmp_path)), extensions=[APPS]) as client:
        video_args = {"model": VIDEO, "prompt": "waves at night"}
        audio_args = {"model": AUDIO, "text": "Hello from the gallery."}
        video = await _finished(client, "generate_video", video_args)
        audio = await _finished(client, "generate_audio", audio_args)
        # The emulator's "video" is an animated WebP (shown as an image, rightly); Atlas's are MP4s on its TOS
        # bucket, so the video result is the emulator's with Atlas's recorded MP4 link in place of the WebP.
        mp4 = json.loads((FIXTURES / "output-urls.signed.json").read_text())["tos"]
        shown_video = wire(video)
        shown_video["structuredContent"]["outputs"][0].update(url=mp4, media_type="video/mp4")
        async with gallery_page(client, calls) as page:
            for arguments, shown in ((video_args, shown_video), (audio_args, wire(audio))):
                await page.evaluate("([input, result]) => window.deliver(input, result)", [arguments, shown])
            view = page.frame_locator("#view")
            await view.locator("audio").wait_for()
            assert await view.locator("video").get_attribute("src") == mp4
            assert await view.locator("video").get_attribute("controls") is not None
            assert await view.locator("audio").get_attribute("src") == expect_done(audio)["outputs"][0]["url"]
            assert await view.locator("audio").get_attribute("controls") is not None
            poster = await view.locator("video").get_attribute("poster")
            assert poster is not None and poster.startswith("data:image/jpeg;base64,")  # Atlas's thumbnail
    assert calls == []


async def _finished(client: Client, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    """Run a generation to its end (videos may outlive one call)."""
    result = await client.call_tool(tool, arguments)
    while result.structured_content is not None and result.structured_content["phase"] == "running":
        prediction_id = result.structured_content["prediction_id"]
        result = await client.call_tool("check_prediction", {"prediction_id": prediction_id, "wait": True})
    return result


# The wire, over stdio, in both protocol eras: what a real client process sees.


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_lists_the_gallery_on_the_right_tools_and_serves_it_with_its_policy(
    emulator: Emulator, tmp_path: Path, mode: str
) -> None:
    params = StdioServerParameters(command=CONSOLE_SCRIPT, env=emulator_env(emulator, tmp_path))
    async with Client(params, mode=mode, extensions=[APPS]) as client:  # type: ignore[arg-type]
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        bound = {name for name, tool in tools.items() if (tool.meta or {}).get("ui")}
        assert bound == GALLERY_TOOLS
        for name in GALLERY_TOOLS:
            assert tools[name].meta == {"ui": {"resourceUri": GALLERY_URI}}  # as mcp.server.apps writes it
        capped = {name for name, tool in tools.items() if "anthropic/maxResultSizeChars" in (tool.meta or {})}
        assert capped == {"list_models", "get_model_info", "list_predictions", "get_usage", "get_costs", "chat"}
        listed = (await client.list_resources()).resources
        assert [(r.uri, r.mime_type) for r in listed] == [(GALLERY_URI, "text/html;profile=mcp-app")]
        read = (await client.read_resource(GALLERY_URI)).contents
        assert len(read) == 1 and read[0].mime_type == "text/html;profile=mcp-app"
        html = getattr(read[0], "text", "")
        policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
        assert policy is not None
        assert "default-src 'none'" in policy.group(1) and "connect-src 'none'" in policy.group(1)
        assert "script-src 'sha256-" in policy.group(1) and "unsafe" not in policy.group(1)
        assert emulator.url in policy.group(1)  # the emulator's loopback origin, because it is our Atlas here
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing external: no CDN, no fonts
        csp = (read[0].meta or {})["ui"]["csp"]
        assert "https://*.aliyuncs.com" in csp["resourceDomains"] and emulator.url in csp["resourceDomains"]
        assert "connectDomains" not in csp


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_only_a_client_with_apps_gets_the_view_block(emulator: Emulator, tmp_path: Path, mode: str) -> None:
    env = emulator_env(emulator, tmp_path)
    results = {}
    for name, extensions in (("plain", []), ("apps", [APPS])):
        params = StdioServerParameters(command=CONSOLE_SCRIPT, env=env)
        async with Client(params, mode=mode, extensions=extensions) as client:  # type: ignore[arg-type]
            results[name] = await client.call_tool(
                "generate_image", {"prompt": f"a kite over the sea ({name}, {mode})", "seed": 7}
            )
    plain, apps = (expect_done(results[name]) for name in ("plain", "apps"))
    assert "view" not in plain
    assert apps.pop("view") == {
        "tool": "generate_image",
        "arguments": {
            "prompt": f"a kite over the sea (apps, {mode})",
            "model": "black-forest-labs/flux-schnell",
            "num_images": 1,
            "seed": 7,
        },
        "seed": 7,
        "kind": "image",
    }
    # Apart from the view block, both clients get the same result: text, preview, links.
    assert [block.type for block in results["plain"].content] == [block.type for block in results["apps"].content]
    assert set(plain) == set(apps)
    assert "Done: 1 output" in text_of(results["plain"])


async def test_results_before_the_gallery_existed_are_unchanged_for_plain_clients(
    emulator: Emulator, tmp_path: Path
) -> None:
    async with Client(create_server(settings_for(emulator, tmp_path))) as client:
        result = await client.call_tool("generate_image", {"prompt": "a quiet harbour"})
    structured = expect_done(result)
    assert "view" not in structured
    assert json.dumps(structured).count("gallery") == 0


async def test_a_price_that_needs_a_yes_is_paid_only_when_the_user_presses_pay(
    emulator: Emulator, tmp_path: Path
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    settings = settings_for(emulator, tmp_path, confirm_above_usd=0)  # every price asks
    async with Client(create_server(settings), extensions=[APPS]) as client:
        arguments = {"prompt": "a paper boat on a pond"}
        asked = await client.call_tool("generate_image", arguments)
        assert asked.is_error and asked.structured_content is not None
        done = await client.call_tool("generate_image", {**arguments, "confirm": asked.structured_content["confirm"]})
        expect_done(done)
        async with gallery_page(client, calls) as page:
            await page.evaluate("([input, result]) => window.deliver(input, result)", [arguments, wire(done)])
            view = page.frame_locator("#view")
            await view.locator("section img").first.wait_for()
            await view.get_by_role("button", name="Vary").click()
            pay = view.get_by_role("button", name=re.compile(r"^Pay .*\$0\.003.* and send$"))
            await pay.wait_for()
            assert len(calls) == 1  # asked, nothing paid yet
            submits = len([r for r in emulator.state.requests if r.path.endswith("/generateImage")])
            await pay.click()
            await view.locator("section.generation").nth(2).wait_for()
            await view.locator("section.generation").first.locator("img").first.wait_for()
    (first_name, first), (second_name, second) = calls
    assert first_name == second_name == "generate_image"
    assert second.pop("confirm") and second == first  # the same request, now with the user's yes
    assert len([r for r in emulator.state.requests if r.path.endswith("/generateImage")]) == submits + 1
