"""Regenerate the console screenshots from the demo itself (SVG from Textual, PNG via cairosvg).

    .venv/bin/pip install -e '.[test]' cairosvg
    .venv/bin/python -m screenshots.make_screenshots

It runs `mirrorline demo` headless at 120x36 with Textual's Pilot: steady replication,
the link cut with the backlog climbing, the recovery after heal, the failures view with
one failure's details open (the logs copy bucket is removed for a moment, so its copies
fail with NoSuchBucket), and the add-endpoint and add-policy forms, the help, and the dashboard folded to 80x24. Look at every PNG
before committing it.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import cairosvg
from minio import Minio

from engine.demo.control import DemoAction
from engine.demo.embedded import EmbeddedDemo
from engine.errors import MirrorlineError
from engine.s3.control import ControlClient
from tui.app import Console

HERE = Path(__file__).resolve().parent


def to_png(svg_path: Path) -> None:
    # cairosvg has no Fira Code here: DejaVu Sans Mono keeps the columns aligned.
    svg = re.sub(
        r"font-family:\s*Fira Code,\s*monospace",
        'font-family: "DejaVu Sans Mono", monospace',
        svg_path.read_text(),
    )
    cairosvg.svg2png(
        bytestring=svg.encode(), write_to=str(svg_path.with_suffix(".png")), output_width=1600
    )


async def until(check: Callable[[], Awaitable[bool]], within: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            if await check():
                return
        except MirrorlineError:  # still starting
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise SystemExit("the demo did not get there in time")
        await asyncio.sleep(0.5)


async def shoot(root: Path) -> None:
    demo = EmbeddedDemo(root, rate=20.0)
    app = Console(demo, starting=demo.start, refresh=1.0, where="demo")

    def save(name: str) -> None:
        path = HERE / f"{name}.svg"
        path.write_text(app.export_screenshot(title="mirrorline demo"))
        to_png(path)
        print(path.with_suffix(".png"))

    async def replicated(n: int) -> bool:
        snap = await demo.status()
        return sum(p.backlog.replicated for p in snap.policies) >= n

    async def backlog(n: int) -> bool:
        snap = await demo.status()
        return sum(p.backlog.pending for p in snap.policies) >= n

    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await until(lambda: replicated(300))
        await pilot.pause(2)
        save("demo-steady")
        # Events on, as a MinIO source would send them: scans wait while the target's link
        # is down, so without events the backlog could not grow during the cut.
        await demo.demo_act(DemoAction.EVENTS)
        await demo.demo_act(DemoAction.CUT)
        await until(lambda: backlog(100))
        await pilot.pause(2)
        save("demo-cut")
        await demo.demo_act(DemoAction.HEAL)
        await until(lambda: _drained(demo))
        await pilot.pause(2)
        save("demo-recovered")
        assert demo.stage is not None
        lab = demo.stage.lab
        direct = Minio(
            lab.target.endpoint.split("//")[1],
            lab.target.access_key,
            lab.target.secret_key,
            secure=False,
        )
        await asyncio.to_thread(direct.remove_bucket, "logs-copy")  # SeaweedFS drops its objects
        await until(lambda: _failed(demo))
        await demo.submit(ControlClient(lab.target_alias).make_bucket("logs-copy"))
        await pilot.press("F")  # failures by cause
        await pilot.pause(2)
        await pilot.press("enter")  # that cause's tasks
        await pilot.pause(2)
        await pilot.press("down")
        await pilot.press("enter")  # one object's whole story
        await pilot.pause(2.5)
        save("demo-failure-detail")
        await pilot.press("escape", "escape", "escape")
        await pilot.pause(1)
        await pilot.press("a")
        await pilot.press(*"demo-src/photos", "tab", *"demo-dst/Photos", "tab")
        await pilot.pause(1)
        save("add-policy")
        await pilot.press("escape")
        await pilot.pause(1)
        await pilot.press("A")
        await pilot.press(*"dr-site", "tab", *"https://minio-b.example:9000", "tab", *"AKIA")
        await pilot.pause(1)
        save("add-endpoint")
        await pilot.press("escape", "question_mark")
        await pilot.pause(1)
        save("help")
        await pilot.press("escape")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(2)
        save("demo-80x24")
        await demo.close()


async def _drained(demo: EmbeddedDemo) -> bool:
    snap = await demo.status()
    return all(p.backlog.pending + p.backlog.retrying < 20 for p in snap.policies)


async def _failed(demo: EmbeddedDemo) -> bool:
    snap = await demo.status()
    return any(p.backlog.failed for p in snap.policies)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot(Path(tmp) / "demo"))


if __name__ == "__main__":
    main()
