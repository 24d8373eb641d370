"""The table of guests: one row per guest, sorted by a chosen column and filtered by text.

The table keeps its own order: each refresh computes the filtered, sorted rows from the
guests' views, updates the cells that changed when the order is the same, and rebuilds the rows
(keeping the selected guest under the cursor) when it is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rich.text import Text
from textual.widgets import DataTable

from hvtui.tui import format as fmt
from hvtui.api import State
from hvtui.tui import gdb as tui_gdb


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    sort_key: Callable
    numeric: bool = False


STATE_ORDER = {State.CRASHED: 0, State.RUNNING: 1, State.PAUSED: 2, State.CREATED: 3, State.STOPPED: 4}

COLUMNS = [
    Column("name", "Name", 16, lambda g: g.name),
    Column("state", "State", 24, lambda g: (STATE_ORDER.get(g.state, 9), g.name)),
    Column("vcpus", "vCPUs", 5, lambda g: g.spec.vcpus, True),
    Column("memory", "Memory", 9, lambda g: g.spec.memory_mib, True),
    Column("exits", "Exits/s", 7, lambda g: g.exits_per_s, True),
    Column("spark", "Trend", 10, lambda g: g.exits_per_s, True),
    Column("top", "Top exit", 14, lambda g: g.top_exit_reason()),
    Column("cpu", "CPU %", 6, lambda g: g.cpu_percent, True),
    Column("uptime", "Uptime", 7, lambda g: g.uptime_s, True),
]
SORTABLE = [c.key for c in COLUMNS if c.key != "spark"]
# an 80-column terminal: no trend, shorter name and top exit (every column + 2 of padding)
COMPACT = [Column(c.key, c.label, {"name": 11, "state": 10, "top": 9}.get(c.key, c.width), c.sort_key, c.numeric)
           for c in COLUMNS if c.key != "spark"]


def row_cells(guest) -> list:
    live = guest.state == State.RUNNING
    return [
        Text(guest.name, style="bold red" if guest.state == State.CRASHED else ""),
        tui_gdb.state_text(guest),
        Text(str(guest.spec.vcpus), justify="right"),
        Text(f"{guest.spec.memory_mib} MiB", justify="right"),
        Text(fmt.human_rate(guest.exits_per_s) if live else "-", justify="right"),
        Text(fmt.sparkline(guest.exits_history, 10), style="cyan" if live else "dim"),
        fmt.top_exit_text(guest) if live else Text("-"),
        Text(f"{guest.cpu_percent:.0f}" if live else "-", justify="right"),
        Text(fmt.uptime(guest.uptime_s), justify="right"),
    ]


def matches(guest, text: str) -> bool:
    if not text:
        return True
    hay = f"{guest.name} {guest.spec.image} {guest.state.value} {guest.status}".lower()
    return all(word in hay for word in text.lower().split())


class GuestTable(DataTable):
    """DataTable of the monitor's guests; `selected` names the guest under the cursor."""

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_column = "name"
        self.sort_reverse = False
        self.filter_text = ""
        self.order: list[str] = []
        self.shown_columns = COLUMNS

    def on_mount(self) -> None:
        for c in self.shown_columns:
            self.add_column(self._label(c), key=c.key, width=c.width)

    def set_compact(self, compact: bool) -> None:
        """Fewer, narrower columns (an 80-column terminal), or all of them."""
        columns = COMPACT if compact else COLUMNS
        if columns is self.shown_columns:
            return
        self.shown_columns = columns
        self.clear(columns=True)
        self.on_mount()
        self.order = []          # rebuilt on the next update

    def _label(self, c: Column) -> str:
        if c.key == self.sort_column:
            return f"{c.label} {'▼' if self.sort_reverse else '▲'}"
        return c.label

    @property
    def selected(self) -> str | None:
        if not self.order or self.cursor_row < 0:
            return None
        return self.order[min(self.cursor_row, len(self.order) - 1)]

    def set_sort(self, key: str, reverse: bool | None = None) -> None:
        self.sort_column = key
        if reverse is not None:
            self.sort_reverse = reverse
        for c in self.shown_columns:
            self.columns[c.key].label = Text(self._label(c))
        self.order = []          # force a rebuild in the new order
        self.refresh()

    def cycle_sort(self) -> str:
        i = SORTABLE.index(self.sort_column) if self.sort_column in SORTABLE else -1
        self.set_sort(SORTABLE[(i + 1) % len(SORTABLE)])
        return self.sort_column

    def update_guests(self, guests) -> None:
        col = next((c for c in COLUMNS if c.key == self.sort_column), COLUMNS[0])
        shown = [g for g in guests if matches(g, self.filter_text)]
        shown.sort(key=col.sort_key, reverse=self.sort_reverse)
        names = [g.name for g in shown]
        keys = {c.key for c in self.shown_columns}
        if names == self.order:
            for g in shown:
                for c, cell in zip(COLUMNS, row_cells(g)):
                    if c.key in keys:
                        self.update_cell(g.name, c.key, cell)
            return
        keep = self.selected
        self.clear()
        for g in shown:
            self.add_row(*[cell for c, cell in zip(COLUMNS, row_cells(g)) if c.key in keys], key=g.name)
        self.order = names
        if keep in names:
            self.move_cursor(row=names.index(keep), animate=False)
