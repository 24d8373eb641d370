#!/usr/bin/env python3
"""Make screenshots/*.svg (and *.png when cairosvg is installed) from a real run of the TUI.

    python3 scripts/screenshots.py [--out screenshots] [--size 120x40]

It starts the app headless on real KVM guests (four running: two counters, a shell and a
crash guest's neighbour counter; a hello that ends; a crash guest that triple-faults),
lets the stats gather, and saves: the dashboard, a console attached to the shell after
typing into it, the crashed guest's detail panel, and the VGA console of the vgademo kernel
after typing into it.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hvtui.api import Boot, GuestSpec  # noqa: E402
from hvtui.tui.app import HvtuiApp  # noqa: E402
from hvtui.tui.driving import press, select, wait_until  # noqa: E402
from hvtui.tui.screens.console import ConsoleScreen  # noqa: E402
from hvtui.tui.screens.dashboard import DashboardScreen  # noqa: E402

FLEET = [
    GuestSpec("counter", name="counter-1", memory_mib=32),
    GuestSpec("counter", name="counter-2", memory_mib=64, vcpus=2),
    GuestSpec("shell", name="shell-1", memory_mib=32),
    GuestSpec("counter", name="counter-3", memory_mib=16),
    GuestSpec("hello", name="hello-1", memory_mib=16),
    GuestSpec("crash", name="crash-1", memory_mib=16, boot=Boot(cmdline="ud")),
    GuestSpec("vgademo", name="vgademo-1", memory_mib=16),
]


PNG_FONT = "DejaVu Sans Mono"   # monospace, with the block and box characters


def to_png(svg: Path) -> Path | None:
    """The PNG of a Textual SVG. cairosvg ignores the SVG's textLength (which keeps each run
    of text to its cells) and, without Fira Code installed, falls back to a proportional
    font: runs then overlap ("11%of 2", a sparkline over the next column). So the PNG is
    drawn with a monospace font this host has, whose cells match the SVG's."""
    try:
        import cairosvg
    except ImportError:
        return None
    png = svg.with_suffix(".png")
    text = svg.read_text().replace("font-family: Fira Code, monospace;", f'font-family: "{PNG_FONT}";')
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=1600)
    return png


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    made = []
    with tempfile.TemporaryDirectory() as logs:
        app = HvtuiApp(specs=FLEET, log_dir=logs, sample_interval=0.5)
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_until(pilot, lambda: app.fleet_started, what="the fleet")
            await pilot.pause(6.0)                      # let rates and sparklines fill
            app.clear_notifications()
            await select(pilot, app, "counter-2", settle=0.3)
            made.append(Path(app.save_screenshot("dashboard.svg", str(out))))

            await select(pilot, app, "shell-1", settle=0.3)
            await press(pilot, "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="console")
            term = app.screen.term
            await wait_until(pilot, lambda: "hvtui>" in term.text(), what="the prompt")
            await press(pilot, *"help", "enter")
            await wait_until(pilot, lambda: "echo" in term.text().split("help", 1)[-1], what="help")
            await press(pilot, *"echo hello from the hvtui console", "enter")
            await wait_until(pilot, lambda: "\nhello from the hvtui console" in term.text(), what="echo")
            await press(pilot, *"mem 4", "enter")
            await pilot.pause(0.5)
            made.append(Path(app.save_screenshot("console.svg", str(out))))

            await press(pilot, "ctrl+right_square_bracket")
            await wait_until(pilot, lambda: isinstance(app.screen, DashboardScreen), what="detach")
            await select(pilot, app, "crash-1", settle=0.3)
            app.notify("crash-1 crashed: " + app.monitor.view("crash-1").crash.summary,
                       title="Guest crashed", severity="error", timeout=30)
            await pilot.pause(0.5)
            made.append(Path(app.save_screenshot("crash.svg", str(out))))

            app.clear_notifications()
            await select(pilot, app, "vgademo-1", settle=0.3)
            await press(pilot, "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ConsoleScreen), what="console")
            vga = app.screen.vga
            await wait_until(pilot, lambda: "ready" in vga.text(), what="the VGA screen")
            await press(pilot, "f2", *"Hello, VGA!", "up")       # F2: bright backgrounds, no blink
            await wait_until(pilot, lambda: "up break" in vga.text(), what="the keys")
            made.append(Path(app.save_screenshot("vga.svg", str(out))))
    return made


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "screenshots"))
    p.add_argument("--size", default="120x40")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(x) for x in args.size.split("x"))
    svgs = asyncio.run(shoot(out, (w, h)))
    for svg in svgs:
        png = to_png(svg)
        print(svg.relative_to(ROOT) if svg.is_relative_to(ROOT) else svg,
              "and " + png.name if png else "(no PNG: pip install cairosvg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
