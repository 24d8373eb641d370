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

from hvtui.errors import StateError
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
    """One `hvtui run --console vga` session: the screen drawn while the guest runs, keys in."""

    def __init__(self, host, name: str, out, tty: bool, pause_input=None, resume_input=None):
        """out: the binary stdout; pause_input() / resume_input() stop and restart reading
        stdin while the guest's key queue is full."""
        self.host, self.name, self.out, self.tty = host, name, out, tty
        self.pause_input, self.resume_input = pause_input, resume_input
        self.keys = TerminalKeys()
        self.blocked: list[int] = []      # keys the queue refused; stdin waits until they are in
        size = os.get_terminal_size(out.fileno()) if tty else os.terminal_size((COLUMNS, ROWS))
        self.ansi = AnsiScreen(self._write, size.columns, size.lines)
        self._task: asyncio.Task | None = None
        self._retry: asyncio.Task | None = None

    def _write(self, text: str) -> None:
        self.out.write(text.encode("utf-8"))
        self.out.flush()

    def start(self) -> None:
        if self.tty:
            self.ansi.enter()
            self._task = asyncio.get_running_loop().create_task(self._draw_forever())

    async def _draw_forever(self) -> None:
        while True:
            self.ansi.draw(self.host.vga_screen(self.name))
            await asyncio.sleep(FRAME_S)

    def feed(self, data: bytes) -> None:
        """Bytes from stdin: to the keyboard as keys."""
        self._send(self.keys.feed(data))

    def _send(self, keys: list[int]) -> None:
        if not keys:
            return
        try:
            self.host.send_keys(self.name, keys)
        except StateError:
            if not self.host.get(self.name).state.live:
                return
            self.blocked = keys
            if self.pause_input:
                self.pause_input()
            self._retry = asyncio.get_running_loop().create_task(self._retry_blocked())

    async def _retry_blocked(self) -> None:
        while self.blocked:
            await asyncio.sleep(RETRY_S)
            keys, self.blocked = self.blocked, []
            try:
                self.host.send_keys(self.name, keys)
            except StateError:
                if self.host.get(self.name).state.live:
                    self.blocked = keys
        if self.resume_input:
            self.resume_input()

    def close(self) -> None:
        """Stop drawing; give the terminal back (after one last frame), or print the final
        screen as text where stdout is not a terminal."""
        for task in (self._task, self._retry):
            if task is not None:
                task.cancel()
        screen = self.host.vga_screen(self.name)
        if self.tty:
            self.ansi.draw(screen)
            self.ansi.leave()
        else:
            self._write(screen.text())
