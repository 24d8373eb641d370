"""A guest's VGA text screen on Textual's line API: 80x25 cells in the guest's 16 colours,
the hardware cursor, and blinking text.

show(screen) takes a new TextScreen (the console screen polls the host for one at up to
30 Hz) and repaints only the rows whose 160 bytes changed, plus the cursor's old and new
row; a change of palette or of the blink mode repaints all. Each row becomes a Strip of
runs of equally styled cells, cached until it changes. Blinking characters (attribute
bit 7 in blink mode) turn into their background every BLINK_S, as on the VGA.
"""
from __future__ import annotations

import functools

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from hvtui.textscreen import COLUMNS, ROWS, TextScreen

BLINK_S = 0.267              # half the VGA's blink period (32 frames at 60 Hz)


@functools.lru_cache(maxsize=1024)
def cell_style(fg: tuple, bg: tuple, underline: bool = False, reverse: bool = False) -> Style:
    return Style(color=Color.from_rgb(*fg), bgcolor=Color.from_rgb(*bg), underline=underline or None,
                 reverse=reverse or None)


class VgaScreen(Widget, can_focus=True):
    """The text screen of one guest, drawn from the TextScreen values it is shown."""

    DEFAULT_CSS = """
    VgaScreen {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.screen_shown = TextScreen.blank()
        self._cache: dict[int, Strip] = {}
        self._blink_on = True
        self._blink_timer = None
        self.repaints = 0            # show() calls that changed something (tests, benchmarks)
        self.rows_repainted = 0      # rows marked for repaint over all of them

    def get_content_width(self, container, viewport) -> int:
        return COLUMNS

    def get_content_height(self, container, viewport, width: int) -> int:
        return ROWS

    def on_mount(self) -> None:
        self._blink_timer = self.set_interval(BLINK_S, self._blink, pause=False)

    # ---- what is shown ----
    @property
    def cursor(self):
        return self.screen_shown.cursor

    def text(self) -> str:
        return self.screen_shown.text()

    def show(self, screen: TextScreen) -> int:
        """Show screen; repaint what changed. Returns the number of rows repainted."""
        old = self.screen_shown
        if screen == old:
            return 0
        self.screen_shown = screen
        if (screen.palette, screen.blink, screen.enabled) != (old.palette, old.blink, old.enabled):
            dirty = set(range(ROWS))
        else:
            dirty = {y for y in range(ROWS) if screen.row(y) != old.row(y)}
            for c in (old.cursor, screen.cursor):
                if c is not None and old.cursor != screen.cursor:
                    dirty.add(c.y)
        self._repaint(dirty)
        self.repaints += 1
        self.rows_repainted += len(dirty)
        return len(dirty)

    def _repaint(self, rows) -> None:
        rows = sorted(rows)
        for y in rows:
            self._cache.pop(y, None)
        start = prev = None
        for y in rows + [None]:          # one region per run of consecutive rows
            if start is not None and (y is None or y != prev + 1):
                self.refresh(Region(0, start, COLUMNS, prev - start + 1))
                start = None
            if y is not None and start is None:
                start = y
            prev = y

    def _blink(self) -> None:
        screen = self.screen_shown
        if not screen.blink or not self.display:
            return
        self._blink_on = not self._blink_on
        self._repaint(y for y in range(ROWS) if any(a & 0x80 for a in screen.row(y)[1::2]))

    # ---- drawing ----
    def render_line(self, y: int) -> Strip:
        if y >= ROWS:
            return Strip.blank(self.size.width, self.rich_style)
        strip = self._cache.get(y)
        if strip is None:
            strip = self._render_row(y)
            self._cache[y] = strip
        return strip

    def _render_row(self, y: int) -> Strip:
        screen = self.screen_shown
        if not screen.enabled:
            return Strip([Segment(" " * COLUMNS, cell_style((0, 0, 0), (0, 0, 0)))], COLUMNS)
        text = screen.row_text(y)
        attrs = screen.row(y)[1::2]
        cursor = screen.cursor if screen.cursor is not None and screen.cursor.y == y else None
        segments: list[Segment] = []
        run: list[str] = []
        run_style = None
        for x in range(COLUMNS):
            fg, bg, blinking = screen.colours(attrs[x])
            fg_rgb, bg_rgb = screen.rgb(fg), screen.rgb(bg)
            if blinking and not self._blink_on:
                fg_rgb = bg_rgb
            at_cursor = cursor is not None and cursor.x == x
            style = cell_style(fg_rgb, bg_rgb, at_cursor and not cursor.block, at_cursor and cursor.block)
            if style is not run_style:
                if run:
                    segments.append(Segment("".join(run), run_style))
                run, run_style = [], style
            run.append(text[x])
        if run:
            segments.append(Segment("".join(run), run_style))
        return Strip(segments, COLUMNS)
