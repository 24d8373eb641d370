"""The VGA console in the TUI over the real vgademo kernel, driven by Pilot at 120x40: its
glyphs in their colours and the cursor where the kernel put it; keys typed reaching the
guest as the right scancodes (the kernel's COM1 echo is the witness), arrows and modifiers
included; prefix+v cycling COM1 -> hvc0 -> VGA; prefix+w saving the screen; the detail
panel's tail of a VGA guest."""
from __future__ import annotations

import pytest
from textual import events

from hvtui.api import SERIAL, VGA, GuestSpec
from hvtui.textscreen import DEFAULT_PALETTE

from tuihelp import history, notes, open_console, press, select, text_of, wait_until

pytestmark = pytest.mark.kvm

BLUE, YELLOW, WHITE, LIGHT_GREY, BLACK = (DEFAULT_PALETTE[i] for i in (1, 14, 15, 7, 0))


def spec(image, name, **kw):
    return GuestSpec(image, name=name, memory_mib=16, **kw)


def style_at(widget, x: int, y: int):
    """The rich Style of the cell at (x, y) as the widget renders it."""
    at = 0
    for seg in widget.render_line(y):
        if at <= x < at + len(seg.text):
            return seg.style
        at += len(seg.text)
    raise AssertionError(f"no cell {x},{y}")


def rgb(color) -> tuple:
    return tuple(color.triplet)


async def open_vga_console(pilot, app, name="v"):
    console = await open_console(pilot, app, name, key="enter")
    await wait_until(pilot, lambda: "ready" in console.vga.text(), what="the demo's screen", timeout=30)
    return console


def com1_keys(app, name="v") -> list[str]:
    return [line for line in history(app, name).decode().splitlines() if line.startswith("key: ")]


async def test_vga_console_shows_the_demo_in_its_colours(tui):
    async with tui([spec("vgademo", "v"), spec("counter", "c1")]) as (app, pilot):
        console = await open_vga_console(pilot, app)
        assert console.console == VGA and console.port_name == "VGA"   # drew on VGA, COM1 silent
        vga = console.vga
        assert vga.display and not console.term.display and vga.has_focus
        lines = vga.text().splitlines()
        assert lines[0].startswith(" hvtui VGA demo")
        assert "☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄" in lines[18] and "░▒▓│┤" in lines[20] and "█▄▌▐▀" in lines[21]
        assert "i8042: cfg 75 selftest 55 kbdtest 00 reset fa aa id fa ab 41 leds fa fa - ready" in lines[22]
        # the title bar: white on blue; the attribute 0x1E sample: yellow on blue
        title = style_at(vga, 3, 0)
        assert rgb(title.color) == WHITE and rgb(title.bgcolor) == BLUE
        x = lines[3].index("1E")
        sample = style_at(vga, x, 3)
        assert rgb(sample.color) == YELLOW and rgb(sample.bgcolor) == BLUE
        # bit 7 set: in blink mode the background is 8 + colour's dark half (here bg 9 -> blue)
        x = lines[11].index("9F")
        assert rgb(style_at(vga, x, 11).bgcolor) == BLUE
        # the hardware cursor where the kernel put it: an underline after "type> "
        assert (vga.cursor.x, vga.cursor.y) == (6, 23) and not vga.cursor.block
        assert style_at(vga, 6, 23).underline and not style_at(vga, 7, 23).underline
        assert "v · VGA · 80x25" in str(app.screen.query_one("#terminal-frame").border_title)


async def test_keys_reach_the_guest_as_scancodes(tui):
    async with tui([spec("vgademo", "v")]) as (app, pilot):
        console = await open_vga_console(pilot, app)
        await press(pilot, "H", "i", "up", "shift+left", "ctrl+c", "alt+x", "f3", "enter")
        await wait_until(pilot, lambda: "key: 9c enter break" in history(app, "v").decode(),
                         what="the echo of enter on COM1")
        assert com1_keys(app) == [
            "key: 2a lshift make", "key: 23 h make 'H'", "key: a3 h break", "key: aa lshift break",
            "key: 17 i make 'i'", "key: 97 i break",
            "key: e0 48 up make", "key: e0 c8 up break",
            "key: 2a lshift make", "key: e0 4b left make", "key: e0 cb left break", "key: aa lshift break",
            "key: 1d lctrl make", "key: 2e c make 'c' [ctrl]", "key: ae c break", "key: 9d lctrl break",
            "key: 38 lalt make", "key: 2d x make 'x' [alt]", "key: ad x break", "key: b8 lalt break",
            "key: 3d f3 make", "key: bd f3 break", "key: 1c enter make", "key: 9c enter break"]
        # before Enter cleared it, "Hi" was on the typing line; F3 made the cursor a block
        # the guest draws the text, then moves the cursor (CRTC writes): wait for both
        cursor = lambda: (console.vga.cursor.x, console.vga.cursor.y)
        await wait_until(pilot, lambda: "last: 9c enter break" in console.vga.text() and cursor() == (6, 23),
                         what="the status line and the cursor at the start of the typing line")
        assert console.vga.cursor.block
        await press(pilot, *"ok")
        await wait_until(pilot, lambda: "type> ok" in console.vga.text() and cursor() == (8, 23),
                         what="typed text on screen, the cursor after it")
        assert style_at(console.vga, 8, 23).reverse           # a block cursor
        console.post_message(events.Paste("!é?"))              # é: no key on a US keyboard
        await wait_until(pilot, lambda: "type> ok!?" in console.vga.text(), what="the paste on screen")
        assert any("have no key on a US keyboard" in n and "é" in n for n in notes(app))


async def test_prefix_v_cycles_and_w_saves_the_screen(tui, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    async with tui([spec("vgademo", "v")]) as (app, pilot):
        console = await open_vga_console(pilot, app)
        await press(pilot, "ctrl+a", "v")
        await wait_until(pilot, lambda: console.console == SERIAL, what="COM1")
        assert console.term.display and not console.vga.display
        await press(pilot, "ctrl+a", "v")
        await wait_until(pilot, lambda: console.port_name == "hvc0", what="hvc0")
        await press(pilot, "ctrl+a", "v")
        await wait_until(pilot, lambda: console.console == VGA and console.vga.display, what="VGA again")
        await press(pilot, "ctrl+a", "w")
        await wait_until(pilot, lambda: any("VGA screen saved" in n for n in notes(app)), what="the note")
        svg = next((tmp_path / "data" / "hvtui" / "screens").glob("v-*.svg"))
        txt = svg.with_suffix(".txt").read_text()
        assert "hvtui VGA demo" in txt and "█▄▌▐▀" in txt
        assert 'fill="#0000aa"' in svg.read_text() and "<animate" in svg.read_text()   # blue, blinking


async def test_detail_panel_shows_the_vga_screen(tui):
    async with tui([spec("vgademo", "v"), spec("counter", "c1")]) as (app, pilot):
        await select(pilot, app, "v")
        panel = app.screen.query_one("#detail-console")
        await wait_until(pilot, lambda: "- ready" in text_of(panel), what="the VGA tail", timeout=30)
        assert "VGA screen" in text_of(panel) and "type>" in text_of(panel)
        await select(pilot, app, "c1")
        await wait_until(pilot, lambda: "count" in text_of(panel), what="c1's COM1 tail")
