"""Screenshot `mirrorline demo --web` in a real headless browser (Debian's chromium).

    python -m screenshots.browser_view URL [OUT.png]

Drives chromium over its DevTools protocol (aiohttp's websocket client, no extra
package): opens the page, presses textual-serve's Start button, waits for the console
to draw its dashboard, and saves a PNG. Prints what the page's terminal shows, so a
run without a display can still tell a live console from a blank page.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

PORT = 9333


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        await self.ws.send_json({"id": n, "method": method, "params": params})
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("id") == n:
                return data.get("result", {})
        raise RuntimeError("chromium closed the connection")

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


async def shoot(url: str, wait_for: str = "Policies", within: float = 60) -> tuple[str, bytes]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = await asyncio.create_subprocess_exec(
            *[
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1500,950",
                f"--remote-debugging-port={PORT}",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession() as http:
                targets = await _targets(http)
                page_ws = next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]
                async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Page.enable")
                    await page.call("Page.navigate", url=url)
                    text = await _console_text(page, wait_for, within)
                    shot = await page.call("Page.captureScreenshot", format="png")
                    return text, base64.b64decode(shot["data"])
        finally:
            proc.terminate()
            await proc.wait()


async def _targets(http: aiohttp.ClientSession) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        try:
            async with http.get(f"http://127.0.0.1:{PORT}/json") as resp:
                return await resp.json()
        except aiohttp.ClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _console_text(page: Page, wait_for: str, within: float) -> str:
    """Press Start once it shows, then wait until the terminal's text contains `wait_for`."""
    deadline = time.monotonic() + within
    pressed = False
    text = ""
    while time.monotonic() < deadline:
        if not pressed:
            pressed = bool(
                await page.js(
                    "(() => { const b = document.getElementById('start');"
                    " if (b && b.offsetParent !== null) { b.click(); return true; } return false; })()"
                )
            )
        else:
            text = (
                await page.js(
                    "(() => { const t = document.querySelector('.xterm-accessibility-tree')"
                    " || document.querySelector('.xterm-rows'); return t ? t.innerText : ''; })()"
                )
                or ""
            )
            if wait_for in text:
                break
        await asyncio.sleep(0.5)
    await asyncio.sleep(4)  # a few refreshes: trends and rates filled in
    return text


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "screenshots/demo-web.png")
    text, png = asyncio.run(shoot(url))
    out.write_bytes(png)
    print(text)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
