"""`hvtui run --console vga`: a guest's VGA text screen on this terminal, and this
terminal's keys on the guest's PS/2 keyboard.

On a terminal the screen is drawn in the alternate screen (the terminal's own is back on
exit), at most 30 times a second, rewriting only rows that changed, with the terminal's
cursor put where the guest's hardware cursor is (underline or block, as its shape). Colours
are the terminal's 16 ANSI colours while the guest keeps the VGA's default palette, and
24-bit colour once it changes it; attribute bit 7 in blink mode is SGR blink. Where stdout
is not a terminal nothing is drawn; the final screen is printed as text when the run ends.

Keys: what the terminal sends (ps2keys.TerminalKeys) goes to the keyboard as make and
break codes. When the host's key queue is full, reading stops until the guest catches up:
nothing typed or piped in is lost.
"""
from __future__ import annotations

import asyncio
import os

from hvtui.errors import HvError, StateError
from hvtui.ps2keys import TerminalKeys
from hvtui.textscreen import COLUMNS, DEFAULT_PALETTE, ROWS, TextScreen

FRAME_S = 1 / 30
RETRY_S = 0.02
VGA_TO_ANSI = (0, 4, 2, 6, 1, 5, 3, 7)     # VGA's colour order (blue first) in ANSI's (red first)


def sgr(screen: TextScreen, attribute: int) -> str:
    """The SGR sequence for an attribute's colours (and blink) on this screen's palette."""
    fg, bg, blinking = screen.colours(attribute)
    if screen.palette == DEFAULT_PALETTE:
        codes = [str((90 if fg & 8 else 30) + VGA_TO_ANSI[fg & 7]), str((100 if bg & 8 else 40) + VGA_TO_ANSI[bg & 7])]
    else:
        codes = ["38;2;%d;%d;%d" % screen.rgb(fg), "48;2;%d;%d;%d" % screen.rgb(bg)]
    if blinking:
        codes.append("5")
    return "\x1b[0;" + ";".join(codes) + "m"


class AnsiScreen:
    """Draws successive TextScreens on a terminal, rewriting only the rows that changed."""

    def __init__(self, write, width: int = COLUMNS, height: int = ROWS):
        self.write = write               # write(str): to the terminal
        self.width, self.height = min(width, COLUMNS), min(height, ROWS)
        self.shown: TextScreen | None = None

    def enter(self) -> None:
        self.write("\x1b[?1049h\x1b[0m\x1b[2J")

    def leave(self) -> None:
        self.write("\x1b[0m\x1b[0 q\x1b[?25h\x1b[?1049l")

    def draw(self, screen: TextScreen) -> None:
        old = self.shown
        if old == screen:
            return
        same_look = old is not None and (old.palette, old.blink, old.enabled) == (screen.palette, screen.blink,
                                                                                  screen.enabled)
        out = ["\x1b[?25l"]
        for y in range(self.height):
            if same_look and old.row(y) == screen.row(y):
                continue
            out.append(f"\x1b[{y + 1};1H")
            if not screen.enabled:
                out.append("\x1b[0;30;40m" + " " * self.width)
                continue
            text, attrs, current = screen.row_text(y), screen.row(y)[1::2], None
            for x in range(self.width):
                if attrs[x] != current:
                    current = attrs[x]
                    out.append(sgr(screen, current))
                out.append(text[x])
        out.append("\x1b[0m")
        c = screen.cursor
        if c is not None and screen.enabled and c.x < self.width and c.y < self.height:
            out.append(f"\x1b[{'2' if c.block else '4'} q\x1b[{c.y + 1};{c.x + 1}H\x1b[?25h")
        self.write("".join(out))
        self.shown = screen


class VgaTerminal:
    """One `hvtui run --console vga` (or `hvtui console NAME --console vga`) session: the
    screen drawn while the guest runs, keys in, through the api."""

    def __init__(self, monitor, name: str, out, tty: bool):
        """monitor: an api.Monitor; out: the binary stdout."""
        self.monitor, self.name, self.out, self.tty = monitor, name, out, tty
        self.keys = TerminalKeys()
        size = os.get_terminal_size(out.fileno()) if tty else os.terminal_size((COLUMNS, ROWS))
        self.ansi = AnsiScreen(self._write, size.columns, size.lines)
        self._task: asyncio.Task | None = None

    def _write(self, text: str) -> None:
        self.out.write(text.encode("utf-8"))
        self.out.flush()

    def start(self) -> None:
        if self.tty:
            self.ansi.enter()
            self._task = asyncio.get_running_loop().create_task(self._draw_forever())

    async def _draw_forever(self) -> None:
        while True:
            try:
                self.ansi.draw(await self.monitor.screen(self.name))
            except HvError:
                return
            await asyncio.sleep(FRAME_S)

    async def send(self, data: bytes) -> None:
        """Bytes from stdin, to the keyboard as keys. While the guest's key queue is full
        this waits (the caller reads no more stdin meanwhile): nothing typed is lost."""
        keys = self.keys.feed(data)
        while keys:
            try:
                await self.monitor.send_keys(self.name, keys)
                return
            except StateError:
                guest = self.monitor.guest(self.name)
                if guest is None or not guest.state.live:
                    return
                await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        """Stop drawing; give the terminal back (after one last frame), or print the final
        screen as text where stdout is not a terminal."""
        if self._task is not None:
            self._task.cancel()
        try:
            screen = await self.monitor.screen(self.name)
        except HvError:
            screen = None
        if self.tty:
            if screen is not None:
                self.ansi.draw(screen)
            self.ansi.leave()
        elif screen is not None:
            self._write(screen.text())
