"""The dashboard: host header, the table of guests, the selected guest's detail panel.

Lifecycle keys (and snapshot, restore, clone) are named bindings (ids usable in the keymap)
shown in the footer and greyed out by check_action when the lifecycle table of hvtui.api
forbids them in the selected guest's state. The view is refreshed from the monitor's events
and a 2 Hz timer; it only reads guests' views.
"""
from __future__ import annotations

import collections
import dataclasses

import psutil
from rich.text import Text
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from hvtui.tui import format as fmt
from hvtui.tui.widgets.detail import DetailPanel
from hvtui.tui.widgets.guest_table import COLUMNS, GuestTable
from hvtui import api
from hvtui.api import State

REFRESH_S = 0.5
NARROW = 100        # columns below which the dashboard takes its compact form (80x24 fits)
NARROW_FOOTER_HIDDEN = {"restore", "clone", "filter", "sort"}     # still keys; listed by ?
NARROW_FOOTER_WORDS = {"snapshot": "Snap", "remove": "Rm"}

# key action -> the lifecycle actions (hvtui.api) of which one must be allowed; () : any guest
ALLOWED = {
    "pause": ("pause", "resume"),
    "start": ("start",),
    "stop": ("stop",),
    "kill": ("kill",),
    "reset": ("reset",),
    "remove": ("remove",),
    "console": (),
    "snapshot": ("snapshot",),
    "clone": ("clone",),
    "gdb": ("gdb",),
}


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("n", "new", "New", id="new"),
        Binding("c", "console", "Console", id="console"),
        Binding("p", "pause", "Pause", id="pause", tooltip="Pause / resume the selected guest"),
        Binding("r", "start", "Start", id="start", tooltip="Start a created, stopped or crashed guest (again)"),
        Binding("s", "stop", "Stop", id="stop"),
        Binding("k", "kill", "Kill", id="kill"),
        Binding("x", "remove", "Remove", id="remove"),
        Binding("ctrl+r", "reset", "Reset", id="reset", show=False, tooltip="Hard reset (asks first)"),
        Binding("S", "snapshot", "Snapshot", id="snapshot",
                tooltip="Snapshot the selected guest to a file (asks where)"),
        Binding("R", "restore", "Restore", id="restore",
                tooltip="Restore a snapshot as a new guest (a file picker)"),
        Binding("C", "clone", "Clone", id="clone",
                tooltip="Clone the selected guest N times (asks N, prefix)"),
        Binding("g", "gdb", "gdb", id="gdb", show=False,     # in help and the palette: the footer is full
                tooltip="Serve gdb for the selected guest (shows the target remote line to type)"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("o", "sort", "Sort", id="sort"),
        Binding("O", "reverse_sort", "Reverse", id="reverse_sort", show=False),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("Q", "kill_server", "Stop monitor", id="kill_server", show=False,
                tooltip="Stop the monitor and every guest (asks first)"),
        Binding("escape", "clear_filter", "Clear filter", id="clear_filter", show=False),
    ]

    _selection = None       # (name, state) of the selected guest when bindings were refreshed
    _want_selected = None   # a guest to select once its row is there (a restored one)

    def compose(self):
        yield Static(id="host-header")
        yield GuestTable(id="guests")
        yield Input(placeholder="filter: name, image or state (Enter keeps it, Esc clears it)",
                    id="filter")
        yield DetailPanel(id="detail")
        yield Footer(compact=True)      # every key fits in 120 columns

    def on_resize(self) -> None:
        self.fit_width()

    def fit_width(self) -> None:
        """The compact form below NARROW columns of the terminal (the app's size: a screen
        can be asked before its first layout)."""
        narrow = self.app.size.width < NARROW
        if narrow != self.has_class("-narrow"):
            self.set_class(narrow, "-narrow")
            self.table.set_compact(narrow)
            self.refresh_bindings()
            self.refresh_view()

    @property
    def active_bindings(self):
        """The footer's keys: on a narrow terminal the less used ones are left out of it
        (they still work, and ? lists them)."""
        bindings = super().active_bindings
        if not self.has_class("-narrow"):
            return bindings
        narrow = {}
        for key, active in bindings.items():
            action = active.binding.action
            if action in NARROW_FOOTER_HIDDEN or action in NARROW_FOOTER_WORDS:
                active = active._replace(binding=dataclasses.replace(
                    active.binding, show=action not in NARROW_FOOTER_HIDDEN,
                    description=NARROW_FOOTER_WORDS.get(action, active.binding.description)))
            narrow[key] = active
        return narrow

    def on_mount(self) -> None:
        psutil.cpu_percent(None)             # prime the host CPU meter
        self.query_one("#filter", Input).display = False
        self.table.focus()
        self.refresh_view()
        self.set_interval(REFRESH_S, self.refresh_view)

    @property
    def table(self) -> GuestTable:
        return self.query_one(GuestTable)

    @property
    def monitor(self) -> api.Monitor:
        return self.app.monitor

    def selected_guest(self) -> api.GuestView | None:
        name = self.table.selected
        return self.monitor.guest(name) if name else None

    # ---- view ----
    def visible(self) -> bool:
        """Shown, or under a modal: not hidden behind a console."""
        return self.is_mounted and (self.is_current or isinstance(self.app.screen, ModalScreen))

    def monitor_event(self, event: api.Event) -> None:
        if isinstance(event, api.GuestRemoved) and event.name == self.query_one(DetailPanel).guest_name:
            self.query_one(DetailPanel).guest_name = None     # a new guest of that name is another one
        if not isinstance(event, api.StatsTick) and self.visible():
            self.refresh_view()

    def on_screen_resume(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        if not self.visible():
            return
        self.fit_width()
        guests = self.monitor.guests()
        headers = self.query("#host-header")
        if not headers:
            return              # not composed yet
        headers.first(Static).update(self.header_text(guests))
        self.table.update_guests(guests)
        if self._want_selected and self._want_selected in self.table.order:
            self.table.move_cursor(row=self.table.order.index(self._want_selected), animate=False)
            self._want_selected = None
        guest = self.selected_guest()
        self.query_one(DetailPanel).show(guest)
        selection = (guest.name, guest.state) if guest else None
        if selection != self._selection:          # the footer recomposes on each refresh
            self._selection = selection
            self.refresh_bindings()

    def header_text(self, guests) -> Text:
        mem = psutil.virtual_memory()
        counts = collections.Counter(g.state for g in guests)
        monitor = "" if self.monitor.embedded else " (monitor)"
        if self.has_class("-narrow"):       # 80 columns: the same figures, fewer words
            t = Text.assemble(("CPU ", "bold"), f"{psutil.cpu_percent(None):.0f}%/{psutil.cpu_count()}  ",
                              ("mem ", "bold"), f"{fmt.human_bytes(mem.used)}/{fmt.human_bytes(mem.total)}  ",
                              ("guests ", "bold"), f"{len(guests)}: ")
        else:
            t = Text.assemble(("hvtui", "bold"), (monitor, "dim"), "  host CPU ",
                              (f"{psutil.cpu_percent(None):3.0f}%", "bold"),
                              f" of {psutil.cpu_count()}  memory ",
                              (f"{fmt.human_bytes(mem.used)} / {fmt.human_bytes(mem.total)}", "bold"),
                              f"  guests {len(guests)}: ")
        parts = [(f"{counts[s]} {s.value}", fmt.STATE_STYLES[s]) for s in State if counts[s]]
        for i, p in enumerate(parts):
            if i:
                t.append(" · ")
            t.append(*p)
        if self.table.filter_text:
            t.append(f"  filter: {self.table.filter_text!r}", style="italic")
        return t

    def select(self, name: str) -> None:
        """Put the cursor on name, now or once its row appears (a filter may hide it)."""
        self._want_selected = name
        self.refresh_view()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.query_one(DetailPanel).show(self.selected_guest())
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_console()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key == self.table.sort_column:
            self.table.set_sort(key, not self.table.sort_reverse)
        else:
            self.table.set_sort(key, False)
        self.refresh_view()

    # ---- bindings ----
    def check_action(self, action: str, parameters) -> bool | None:
        if action in ALLOWED:
            guest = self.selected_guest()
            if guest is None:
                return None
            needs = ALLOWED[action]
            return True if not needs or any(guest.can(a) for a in needs) else None
        if action == "clear_filter":
            return bool(self.table.filter_text) or self.query_one("#filter").display
        return True

    def action_new(self) -> None:
        self.app.ask_new_guest()

    def action_console(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.open_console(guest.name)

    def action_pause(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.toggle_pause(guest.name)

    def action_start(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.start_guest(guest.name)

    def action_reset(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.reset_guest(guest.name)

    def action_kill_server(self) -> None:
        self.app.ask_kill_server()

    def action_stop(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.stop_guest(guest.name)

    def action_kill(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.kill_guest(guest.name)

    def action_remove(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.remove_guest(guest.name)

    def action_snapshot(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.ask_snapshot(guest.name)

    def action_restore(self) -> None:
        self.app.ask_restore()

    def action_clone(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.ask_clone(guest.name)

    def action_gdb(self) -> None:
        guest = self.selected_guest()
        if guest is not None:
            self.app.start_gdb(guest.name)

    def action_sort(self) -> None:
        column = self.table.cycle_sort()
        self.notify(f"sorted by {next(c.label for c in COLUMNS if c.key == column)}", timeout=1.5)
        self.refresh_view()

    def action_reverse_sort(self) -> None:
        self.table.set_sort(self.table.sort_column, not self.table.sort_reverse)
        self.refresh_view()

    def action_help(self) -> None:
        self.app.show_help()

    def action_quit(self) -> None:
        self.app.ask_quit()

    # ---- filter ----
    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.table.filter_text
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.filter_text = ""
        self.table.focus()
        self.refresh_view()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.table.filter_text = event.value.strip()
            self.refresh_view()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(self.table.filter_text)
            self.table.focus()
