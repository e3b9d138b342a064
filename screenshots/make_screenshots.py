"""Regenerate the console screenshots from a real run (SVG from Textual, PNG via cairosvg).

    .venv/bin/pip install -e '.[test]' cairosvg
    .venv/bin/python screenshots/make_screenshots.py

Two real SeaweedFS servers; three policies: `photos` copying under a bandwidth limit
(so transfers are visibly in flight), `logs` whose target bucket is removed after its
tasks are queued (so failures pile up), `cfg` paused with work waiting. The console
runs headless with the engine embedded, for a minute so the trends have a past.
Look at every PNG before committing it.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import cairosvg
from minio import Minio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from engine.aliases import Alias, AliasBook  # noqa: E402
from engine.config import EngineConfig  # noqa: E402
from engine.demo.seaweed import SeaweedServer  # noqa: E402
from engine.service import PolicySpec  # noqa: E402
from engine.service.embedded import EmbeddedEngine  # noqa: E402
from engine.service.local import LocalService  # noqa: E402
from tests.conftest import make_bucket  # noqa: E402
from tui.app import Console  # noqa: E402


def client(server: SeaweedServer) -> Minio:
    host = server.endpoint.split("//")[1]
    return Minio(host, server.access_key, server.secret_key, secure=False, region="us-east-1")


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


async def shoot(state: Path, src: Minio, dst: Minio) -> None:
    embedded = EmbeddedEngine(EngineConfig(state_dir=state, workers=16, scan_interval=2))
    app = Console(embedded, starting=embedded.start, refresh=1.0, where=f"engine on {state.name}")

    def save(name: str) -> None:
        path = HERE / f"{name}.svg"
        path.write_text(app.export_screenshot(title="mirrorline"))
        to_png(path)
        print(path.with_suffix(".png"))

    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await pilot.pause(8)
        dst.remove_bucket("logs-copy")  # queued copies now fail: NoSuchBucket
        await embedded.set_paused(False, "logs")
        await pilot.pause(40)
        save("dashboard")
        await pilot.press("F")
        await pilot.pause(2)
        await pilot.press("down", "space", "down", "space")
        await pilot.pause(1.5)
        save("failures")
        await pilot.press("enter")
        await pilot.pause(1)
        save("task-detail")
        await pilot.press("escape", "escape")
        await pilot.pause(1)
        await pilot.press("a")
        await pilot.press(*"src/photos", "tab", *"dst/Photos", "tab", "tab", *"team=", "tab")
        await pilot.pause(1)
        save("add-policy")
        await pilot.press("escape", "question_mark")
        await pilot.pause(1)
        save("help")
        await pilot.press("escape")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(2)
        save("dashboard-80x24")
        await embedded.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = SeaweedServer(root / "a", access_key="shotsrc", secret_key="shot-src-secret")
        b = SeaweedServer(root / "b", access_key="shotdst", secret_key="shot-dst-secret")
        a.start()
        b.start()
        try:
            src, dst = client(a), client(b)
            for name in ("photos", "logs", "cfg"):
                make_bucket(src, name)
                make_bucket(dst, f"{name}-copy")
            for i in range(400):
                data = os.urandom(200_000 + 3000 * i)
                src.put_object("photos", f"2026/11/IMG_{i:04}.heic", io.BytesIO(data), len(data))
            for i in range(60):
                src.put_object("logs", f"app/{i:03}.log", io.BytesIO(b"l" * 900), 900)
            for i in range(8):
                src.put_object("cfg", f"cfg/{i}.yaml", io.BytesIO(b"c" * 300), 300)
            state = root / "state"
            book = AliasBook(state / "aliases.json")
            book.set(Alias("src", a.endpoint, a.access_key, a.secret_key))
            book.set(Alias("dst", b.endpoint, b.access_key, b.secret_key))
            asyncio.run(policies(state))
            asyncio.run(shoot(state, src, dst))
        finally:
            a.stop()
            b.stop()


async def policies(state: Path) -> None:
    service = await LocalService.open(state, actor="cli")
    try:
        for pid, bucket, bandwidth in (
            ("photos", "photos", "4MiB"),
            ("logs", "logs", ""),
            ("cfg", "cfg", ""),
        ):
            await service.add_policy(
                PolicySpec(f"src/{bucket}", f"dst/{bucket}-copy", id=pid, bandwidth=bandwidth)
            )
        await service.set_paused(True, "logs")
        await service.set_paused(True, "cfg")
    finally:
        await service.close()


if __name__ == "__main__":
    main()
