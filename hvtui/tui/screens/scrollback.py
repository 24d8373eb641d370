"""The scrollback of a guest's console: its history (the host's ring) in a read-only text
area, with a search box: Enter or ^N finds the next match, ^B the previous; Escape closes.
"""
from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, TextArea
from textual.widgets.text_area import Selection

from hvtui.tui import format as fmt

MAX_LINES = 20000


class ScrollbackScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close", id="scrollback.close"),
                Binding("ctrl+n", "find(1)", "Next match", id="scrollback.next"),
                Binding("ctrl+b", "find(-1)", "Previous match", id="scrollback.previous")]

    def __init__(self, guest_name: str, history: bytes, **kwargs):
        super().__init__(**kwargs)
        self.guest_name = guest_name
        self.lines = fmt.console_tail(history, MAX_LINES, width=1000)
        self.position: tuple[int, int] | None = None

    def compose(self):
        with Vertical(id="scrollback", classes="dialog"):
            yield Label(f"scrollback of {self.guest_name}: Enter / ^N next match, ^B previous, Esc closes",
                        classes="dialog-title")
            yield TextArea("\n".join(self.lines), read_only=True, id="scrollback-text",
                           show_line_numbers=True, soft_wrap=False)
            yield Input(placeholder="search", id="scrollback-search")
            yield Label("", id="scrollback-status")

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.move_cursor((max(0, len(self.lines) - 1), 0))
        area.scroll_end(animate=False)
        self.query_one(Input).focus()

    def find(self, needle: str, step: int = 1) -> tuple[int, int] | None:
        """Next (step 1) or previous (-1) match after the last one, wrapping; (line, col)."""
        if not needle or not self.lines:
            return None
        needle, n = needle.lower(), len(self.lines)
        if self.position is None:
            start, first_col = (0 if step > 0 else n - 1), None
        else:
            start, first_col = self.position
        for k in range(n + 1):
            i = (start + step * k) % n
            line = self.lines[i].lower()
            if k == 0 and first_col is not None:
                j = line.find(needle, first_col + 1) if step > 0 else line.rfind(needle, 0, first_col)
            else:
                j = line.find(needle) if step > 0 else line.rfind(needle)
            if j >= 0:
                self.position = (i, j)
                return self.position
        return None

    def action_find(self, step: int = 1) -> None:
        needle = self.query_one(Input).value
        status = self.query_one("#scrollback-status", Label)
        hit = self.find(needle, step)
        if hit is None:
            status.update(f"{needle!r}: not found" if needle else "")
            return
        row, col = hit
        area = self.query_one(TextArea)
        area.selection = Selection((row, col), (row, col + len(needle)))
        area.scroll_cursor_visible(center=True, animate=False)
        status.update(f"{needle!r}: line {row + 1}")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_find(1)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.position = None

    def action_close(self) -> None:
        self.dismiss(None)
