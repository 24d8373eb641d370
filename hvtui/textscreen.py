"""A VGA text screen as a value: 80x25 cells of (code page 437 byte, attribute), the
hardware cursor, the 16 colours the attribute nibbles stand for, and whether attribute
bit 7 blinks the character or brightens the background. Made by the VGA device from guest
memory (vmm/devices/vga.py); read by the TUI, `hvtui run --console vga` and the exports
here: plain text, and SVG in the screen's colours.

No KVM and no Textual here: only bytes, colours and strings.
"""
from __future__ import annotations

import array
from dataclasses import dataclass


def escape(text: str) -> str:
    """XML's three (xml.sax.saxutils.escape would load urllib and http.client: ~13 ms of
    every start-up, since the api imports this module)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


COLUMNS, ROWS = 80, 25
CELLS = COLUMNS * ROWS
ROW_BYTES = COLUMNS * 2
BLANK = 0x0720                    # a space, light grey on black: what firmware clears to

# Code page 437 as the VGA's character ROM draws it: Python's cp437 codec, with glyphs for
# the control bytes (0x01-0x1f, 0x7f) that the codec leaves as controls.
_GLYPHS = "☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼"
CP437 = (" " + _GLYPHS + bytes(range(0x20, 0x7F)).decode("cp437") + "⌂"
         + bytes(range(0x80, 0xFF)).decode("cp437") + " ")
assert len(CP437) == 256

# The colours of the VGA BIOS's text-mode palette (DAC entries of the 16 attribute colours).
DEFAULT_PALETTE = (
    (0, 0, 0), (0, 0, 170), (0, 170, 0), (0, 170, 170), (170, 0, 0), (170, 0, 170), (170, 85, 0),
    (170, 170, 170), (85, 85, 85), (85, 85, 255), (85, 255, 85), (85, 255, 255), (255, 85, 85),
    (255, 85, 255), (255, 255, 85), (255, 255, 255))
COLOUR_NAMES = ("black", "blue", "green", "cyan", "red", "magenta", "brown", "light grey", "dark grey",
                "light blue", "light green", "light cyan", "light red", "light magenta", "yellow", "white")


@dataclass(frozen=True)
class Cursor:
    x: int
    y: int
    start: int = 13           # first and last scan line of the character cell it covers
    end: int = 14
    height: int = 16          # scan lines per character row

    @property
    def block(self) -> bool:
        """Covers at least half the cell (a block cursor rather than an underline)."""
        return self.end - self.start + 1 >= self.height // 2


@dataclass(frozen=True)
class TextScreen:
    cells: bytes                            # CELLS * 2 bytes: character, attribute per cell
    cursor: Cursor | None = None            # None: hidden, or off the screen
    palette: tuple = DEFAULT_PALETTE        # 16 (r, g, b) tuples
    blink: bool = True                      # attribute bit 7: blink (True) or bright background
    enabled: bool = True                    # the guest turned the display on

    def __post_init__(self):
        if len(self.cells) != CELLS * 2:
            raise ValueError(f"a text screen has {CELLS * 2} bytes of cells, not {len(self.cells)}")

    @classmethod
    def blank(cls) -> TextScreen:
        return cls(array.array("H", [BLANK] * CELLS).tobytes())

    def row(self, y: int) -> bytes:
        return self.cells[y * ROW_BYTES:(y + 1) * ROW_BYTES]

    def cell(self, x: int, y: int) -> tuple[str, int]:
        """(character, attribute) at column x, row y."""
        i = (y * COLUMNS + x) * 2
        return CP437[self.cells[i]], self.cells[i + 1]

    def colours(self, attribute: int) -> tuple[int, int, bool]:
        """(foreground index, background index, blinking) of an attribute byte."""
        if self.blink:
            return attribute & 0x0F, (attribute >> 4) & 0x07, bool(attribute & 0x80)
        return attribute & 0x0F, attribute >> 4, False

    def rgb(self, index: int) -> tuple[int, int, int]:
        return self.palette[index]

    def row_text(self, y: int) -> str:
        return "".join(CP437[b] for b in self.row(y)[0::2])

    def lines(self) -> list[str]:
        return [self.row_text(y) for y in range(ROWS)]

    def text(self) -> str:
        """The screen as text: 25 lines, trailing spaces dropped, ending in a newline."""
        return "\n".join(line.rstrip() for line in self.lines()) + "\n"

    @property
    def used(self) -> bool:
        """Something other than blank cells (as firmware or a zeroed RAM leaves them) is shown."""
        return not set(array.array("H", self.cells)) <= {0, BLANK}

    def svg(self, title: str = "VGA text screen") -> str:
        return to_svg(self, title)


# ---- SVG ----
CELL_W, CELL_H, FONT_PX = 9, 16, 14      # the VGA's own 9x16 character cell


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


def _runs(screen: TextScreen, y: int, key):
    """Runs (x0, x1, value) of equal key(x) along row y."""
    start, current = 0, key(0)
    for x in range(1, COLUMNS + 1):
        value = key(x) if x < COLUMNS else None
        if x == COLUMNS or value != current:
            yield start, x, current
            start, current = x, value


def to_svg(screen: TextScreen, title: str = "VGA text screen") -> str:
    """The screen as an SVG picture in its own colours: backgrounds as rectangles, text as
    runs of one colour (blinking ones animated), and the hardware cursor."""
    w, h = COLUMNS * CELL_W, ROWS * CELL_H
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
           f"<title>{escape(title)}</title>",
           f'<rect width="{w}" height="{h}" fill="{_hex(screen.palette[0])}"/>',
           f'<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="{FONT_PX}px" '
           'xml:space="preserve">']
    if not screen.enabled:
        out.append("</g></svg>\n")
        return "\n".join(out)
    for y in range(ROWS):
        attrs = screen.row(y)[1::2]
        for x0, x1, bg in _runs(screen, y, lambda x: screen.colours(attrs[x])[1]):
            if bg != 0:
                out.append(f'<rect x="{x0 * CELL_W}" y="{y * CELL_H}" width="{(x1 - x0) * CELL_W}" '
                           f'height="{CELL_H}" fill="{_hex(screen.rgb(bg))}"/>')
        text = screen.row_text(y)
        for x0, x1, (fg, blinking) in _runs(screen, y, lambda x: screen.colours(attrs[x])[0::2]):
            run = text[x0:x1]
            if not run.strip():
                continue
            animate = ('<animate attributeName="opacity" values="1;0" dur="0.53s" calcMode="discrete" '
                       'repeatCount="indefinite"/>' if blinking else "")
            out.append(f'<text x="{x0 * CELL_W}" y="{y * CELL_H + 12}" textLength="{(x1 - x0) * CELL_W}" '
                       f'lengthAdjust="spacingAndGlyphs" fill="{_hex(screen.rgb(fg))}">{escape(run)}{animate}</text>')
    c = screen.cursor
    if c is not None:
        fg = screen.colours(screen.cell(c.x, c.y)[1])[0]
        top = c.start * CELL_H // max(c.height, 1)
        bottom = (c.end + 1) * CELL_H // max(c.height, 1)
        out.append(f'<rect x="{c.x * CELL_W}" y="{c.y * CELL_H + top}" width="{CELL_W}" '
                   f'height="{max(bottom - top, 1)}" fill="{_hex(screen.rgb(fg))}"/>')
    out.append("</g></svg>\n")
    return "\n".join(out)


def save(screen: TextScreen, base: str, title: str = "VGA text screen") -> tuple[str, str]:
    """Write BASE.txt and BASE.svg (a .txt or .svg suffix on base is dropped); their paths."""
    for suffix in (".svg", ".txt"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
    txt, svg = base + ".txt", base + ".svg"
    with open(txt, "w", encoding="utf-8") as f:
        f.write(screen.text())
    with open(svg, "w", encoding="utf-8") as f:
        f.write(screen.svg(title))
    return txt, svg
