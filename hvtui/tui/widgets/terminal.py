"""A terminal widget on Textual's line API: a pyte screen fed through pyte.ByteStream.

Bytes go into pyte as they arrive; the widget repaints at most ~30 times a second and
only the lines pyte marked dirty (plus the cursor's old and new line). Each line becomes
a Strip of runs of equally styled cells, cached until pyte dirties it again.

The guest's screen keeps its size (80x24 unless configured) whatever the terminal's: when
the widget is given less room (an 80x24 terminal has 22 rows for it), it shows the part
of the guest's screen around the cursor and follows it, so the line being typed on is
always in view.
key_to_bytes turns Textual keys into what a VT100/xterm sends, honouring application
cursor mode (DECCKM) for the arrows.
"""
from __future__ import annotations

import functools
import time

import pyte
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

DECCKM = 1 << 5          # pyte keeps private modes shifted left by 5: ?1 -> 32
FRAME_S = 1 / 30         # at most ~30 repaints a second

_BASE = {"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"}
_PYTE_NAMES = {"brown": "yellow", "default": None}

SPECIAL_KEYS = {
    "enter": b"\r", "tab": b"\t", "backspace": b"\x7f", "ctrl+h": b"\x08", "escape": b"\x1b",
    "shift+tab": b"\x1b[Z", "insert": b"\x1b[2~", "delete": b"\x1b[3~",
    "pageup": b"\x1b[5~", "pagedown": b"\x1b[6~", "space": b" ", "ctrl+space": b"\x00",
    "ctrl+at": b"\x00", "ctrl+left_square_bracket": b"\x1b", "ctrl+backslash": b"\x1c",
    "ctrl+right_square_bracket": b"\x1d", "ctrl+circumflex_accent": b"\x1e",
    "ctrl+underscore": b"\x1f",
    "f1": b"\x1bOP", "f2": b"\x1bOQ", "f3": b"\x1bOR", "f4": b"\x1bOS",
    "f5": b"\x1b[15~", "f6": b"\x1b[17~", "f7": b"\x1b[18~", "f8": b"\x1b[19~",
    "f9": b"\x1b[20~", "f10": b"\x1b[21~", "f11": b"\x1b[23~", "f12": b"\x1b[24~",
}
CURSOR_KEYS = {"up": b"A", "down": b"B", "right": b"C", "left": b"D", "home": b"H", "end": b"F"}


def key_to_bytes(key: str, character: str | None, app_cursor: bool = False) -> bytes | None:
    """The bytes a terminal sends for a Textual key, or None for a key that sends nothing."""
    if key in CURSOR_KEYS:
        return (b"\x1bO" if app_cursor else b"\x1b[") + CURSOR_KEYS[key]
    if key in SPECIAL_KEYS:
        return SPECIAL_KEYS[key]
    if key.startswith("ctrl+") and len(key) == 6 and key[5].isalpha():
        return bytes([ord(key[5].lower()) - ord("a") + 1])
    if character and (character.isprintable() or character in "\r\t\x1b\x7f"):
        return character.encode("utf-8", "replace")
    if character and len(character) == 1 and ord(character) < 0x20:
        return character.encode()
    return None


def _colour(name: str) -> str | None:
    if name in _PYTE_NAMES:
        return _PYTE_NAMES[name]
    if name in _BASE:
        return name
    if name.startswith("bright") and name[6:].lstrip("_") in _BASE | {"brown"}:
        base = name[6:].lstrip("_")
        return "bright_" + ("yellow" if base == "brown" else base)
    if len(name) == 6:
        try:
            int(name, 16)
            return "#" + name
        except ValueError:
            return None
    return None


@functools.lru_cache(maxsize=4096)
def cell_style(fg: str, bg: str, bold: bool, italics: bool, underscore: bool,
               strikethrough: bool, reverse: bool) -> Style:
    return Style(color=_colour(fg), bgcolor=_colour(bg), bold=bold or None, italic=italics or None,
                 underline=underscore or None, strike=strikethrough or None, reverse=reverse or None)


class Terminal(Widget, can_focus=True):
    """An emulated terminal of a fixed size showing a guest's serial console."""

    DEFAULT_CSS = """
    Terminal {
        width: auto;
        height: auto;
        background: $background;
        color: $foreground;
    }
    """

    def __init__(self, columns: int = 80, lines: int = 24, **kwargs):
        super().__init__(**kwargs)
        self.columns, self.lines = columns, lines
        self.pyte_screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.pyte_screen)
        self._cache: dict[int, Strip] = {}
        self._flush_pending = False
        self._last_flush = 0.0
        self._cursor_y = 0
        self.repaints = 0            # flushes done (for tests and the benchmark)
        self.on_paint = None         # called with a row's index when it is rendered anew
        self.lines_repainted = 0     # lines marked for repaint over all flushes
        self.top = 0                 # first guest row shown (when fewer rows fit than it has)
        self.left = 0                # first guest column shown

    # ---- size ----
    def get_content_width(self, container, viewport) -> int:
        return self.columns

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.lines

    # ---- state ----
    @property
    def app_cursor(self) -> bool:
        return DECCKM in self.pyte_screen.mode

    def display_lines(self) -> list[str]:
        """The screen's text, one string per line (trailing spaces kept)."""
        return list(self.pyte_screen.display)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.pyte_screen.display)

    def reset(self) -> None:
        self.pyte_screen.reset()
        self._cache.clear()
        self.top = self.left = 0
        self.refresh()

    # ---- the window on the guest's screen ----
    @property
    def view_size(self) -> tuple[int, int]:
        """(columns, rows) of the guest's screen the widget has room to show."""
        w, h = self.size
        return (min(self.columns, w) if w else self.columns), (min(self.lines, h) if h else self.lines)

    def follow_cursor(self) -> bool:
        """Move the window so that the cursor is inside it; True if it moved."""
        w, h = self.view_size
        cursor = self.pyte_screen.cursor
        top, left = self.top, self.left
        if cursor.y < top:
            top = cursor.y
        elif cursor.y >= top + h:
            top = cursor.y - h + 1
        if cursor.x < left:
            left = cursor.x
        elif cursor.x >= left + w:
            left = cursor.x - w + 1
        top, left = max(0, min(top, self.lines - h)), max(0, min(left, self.columns - w))
        moved = (top, left) != (self.top, self.left)
        self.top, self.left = top, left
        return moved

    def on_resize(self) -> None:
        self.follow_cursor()
        self.refresh()

    def feed(self, data: bytes) -> None:
        self.stream.feed(data)
        self._schedule()

    # ---- repaint ----
    def _schedule(self) -> None:
        if self._flush_pending:
            return
        self._flush_pending = True
        delay = self._last_flush + FRAME_S - time.monotonic()
        if delay > 0:
            self.set_timer(delay, self._flush)
        else:
            self.call_later(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._last_flush = time.monotonic()
        screen = self.pyte_screen
        dirty = set(screen.dirty)
        screen.dirty.clear()
        cy = screen.cursor.y
        dirty.update((cy, self._cursor_y))
        self._cursor_y = cy
        dirty = sorted(y for y in dirty if 0 <= y < self.lines)
        for y in dirty:
            self._cache.pop(y, None)
        self.repaints += 1
        self.lines_repainted += len(dirty)
        if self.follow_cursor():        # the window moved: every row shown is another one
            self.refresh()
            return
        # refresh runs of consecutive lines (as shown in the window), one region each
        shown = [y - self.top for y in dirty if 0 <= y - self.top < self.view_size[1]]
        start = prev = None
        for y in shown + [None]:
            if start is not None and (y is None or y != prev + 1):
                self.refresh(Region(0, start, self.columns, prev - start + 1))
                start = None
            if y is not None and start is None:
                start = y
            prev = y

    def on_focus(self) -> None:
        self._cache.pop(self.pyte_screen.cursor.y, None)
        self.refresh()

    def on_blur(self) -> None:
        self.on_focus()

    def render_line(self, y: int) -> Strip:
        """Widget line y: guest row top + y, columns left.. as wide as the widget."""
        row = y + self.top
        if row >= self.lines:
            return Strip.blank(self.size.width, self.rich_style)
        strip = self._cache.get(row)
        if strip is None:
            strip = self._render_row(row)
            self._cache[row] = strip
            if self.on_paint is not None:
                self.on_paint(row)
        if self.left or self.size.width < self.columns:
            return strip.crop(self.left, self.left + self.view_size[0])
        return strip

    def _render_row(self, y: int) -> Strip:
        screen = self.pyte_screen
        row = screen.buffer[y]
        cursor_x = -1
        if y == screen.cursor.y and not screen.cursor.hidden and self.has_focus:
            cursor_x = screen.cursor.x
        segments: list[Segment] = []
        text: list[str] = []
        run_style = None
        for x in range(self.columns):
            ch = row[x]
            style = cell_style(ch.fg, ch.bg, ch.bold, ch.italics, ch.underscore, ch.strikethrough,
                               ch.reverse != (x == cursor_x))
            if style is not run_style:
                if text:
                    segments.append(Segment("".join(text), run_style))
                text, run_style = [], style
            text.append(ch.data)
        if text:
            segments.append(Segment("".join(text), run_style))
        return Strip(segments, self.columns).apply_style(self.rich_style)
