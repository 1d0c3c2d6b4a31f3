"""OAuth mode's consent page in a real browser (headless Chromium through Playwright), driven by the MCP Python SDK's
own OAuth client: the page renders under its Content-Security-Policy with no violation, the user types the key and
presses Connect, and the browser is sent back to the client's callback (which the policy must allow), code, state
and iss in hand. Then a paid call, billed to the typed key.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from mcp.shared.auth import AuthorizationCodeResult

from atlas_mcp.emulator import Emulator

from .harness import expect_done
from .test_gallery import chromium
from .test_http import http_env, http_server
from .test_oauth import CALLBACK, PASTED, SECRET, _Memory, _paid_with, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]  # a browser


class _BrowserPerson:
    """The user, in Chromium: opens the authorization URL, types the key, presses Connect."""

    def __init__(self) -> None:
        self.result: AuthorizationCodeResult | None = None
        self.problems: list[str] = []

    async def open(self, url: str) -> None:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                page.on("console", lambda message: self.problems.append(message.text))
                page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
                landed: list[str] = []

                async def callback(route: object) -> None:
                    landed.append(route.request.url)  # type: ignore[attr-defined]
                    await route.fulfill(status=200, body="signed in")  # type: ignore[attr-defined]

                await page.route(re.compile(r"^http://127\.0\.0\.1:9/"), callback)
                await page.goto(url)
                assert await page.title() == "Connect Atlas Cloud"
                await page.fill("#api_key", PASTED)
                await page.click("button[type=submit]")
                await page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:9/callback"), timeout=15_000)
            finally:
                await browser.close()
        query = parse_qs(urlsplit(landed[0]).query)
        self.result = AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


async def test_a_person_signs_in_on_the_consent_page_in_chromium(emulator: Emulator, tmp_path: Path) -> None:
    chromium()  # skips (or fails in strict mode) with what to install
    env = http_env(emulator, tmp_path, ATLASCLOUD_OAUTH_SECRET=SECRET)
    person = _BrowserPerson()
    with http_server(env, tmp_path / "http.log", auth="oauth") as origin:
        async with signed_in(origin, person, _Memory()) as client:  # type: ignore[arg-type]
            result = await client.call_tool("generate_image", {"prompt": "a heron"})
    expect_done(result)
    assert person.result is not None and person.result.iss == origin
    assert not [p for p in person.problems if "Content Security Policy" in p or "page error" in p], person.problems
    assert _paid_with(emulator) == {f"Bearer {PASTED}"}
    assert CALLBACK.startswith("http://127.0.0.1:9/")
