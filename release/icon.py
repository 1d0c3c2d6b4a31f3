"""Draw the bundle's icon (release/icon.png) from the server's own SVG icon: `uv run python -m release.icon`.

Claude Desktop wants a PNG for a bundle. The picture is the one the server shows MCP clients (a globe with a
spark, atlas_mcp/server/icons.py), light strokes on a dark rounded square so it reads on light and dark lists,
rendered by Chromium (as the gallery's tests use it) rather than redrawn by hand.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

from atlas_mcp.server.icons import SERVER

OUT = Path(__file__).resolve().parent / "icon.png"
SIZE = 512


def main() -> None:
    from playwright.sync_api import sync_playwright

    dark = next(icon for icon in SERVER if icon.theme == "dark")
    svg = base64.b64decode(dark.src.split(",", 1)[1]).decode()
    page_html = (
        "<html><body style='margin:0;background:transparent'>"
        f"<div style='width:{SIZE}px;height:{SIZE}px;border-radius:{SIZE // 5}px;background:#1f2937;"
        f"display:flex;align-items:center;justify-content:center'>"
        f"<div style='width:{SIZE * 3 // 4}px;height:{SIZE * 3 // 4}px'>{svg}</div></div></body></html>"
    )
    chromium = shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": SIZE, "height": SIZE})
        page.set_content(page_html.replace("<svg ", "<svg width='100%' height='100%' "))
        page.screenshot(path=str(OUT), omit_background=True)
        browser.close()
    print(OUT)


if __name__ == "__main__":
    main()
