"""The detail panel of the selected guest: registers, exit reasons as bars, busiest I/O
ports and the tail of its console (of its VGA screen, for a guest whose console that is);
a crashed guest's crash report stays here.

Everything comes from the guest's view (registers of a paused or ended guest included);
the console tail is a small ring the panel keeps by watching the selected guest's console.
"""
from __future__ import annotations

import asyncio
import collections

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from hvtui.api import SERIAL, VGA, State
from hvtui.errors import HvError
from hvtui.tui import format as fmt
from hvtui.tui import gdb as tui_gdb

REGISTERS = [("RIP", "rip"), ("RSP", "rsp"), ("RFLAGS", "rflags"), ("CR0", "cr0"), ("CR3", "cr3"),
             ("CR4", "cr4"), ("EFER", "efer")]
TAIL_LINES = 14
TAIL_BYTES = 8192


def registers_table(regs: list[dict | str], per_line: int = 3) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", min_width=6)
    t.add_column()
    for i, r in enumerate(regs):
        if isinstance(r, str):
            t.add_row(f"vCPU{i}", Text(r, style="dim"))
            continue
        parts = Text()
        for j, (label, key) in enumerate(REGISTERS):
            if j and j % per_line == 0:
                parts.append("\n")
            parts.append(f"{label:>6} ", style="cyan")
            value = r.get(key)
            parts.append(f"{value:#018x}  " if value is not None else "-".ljust(20))
        t.add_row(f"vCPU{i}", parts)
    return t


def exits_bars(guest, width: int = 10) -> Table:
    totals = collections.Counter(guest.by_reason)
    t = Table.grid(padding=(0, 1))
    t.add_column(width=13)
    t.add_column(width=width, style="magenta")
    t.add_column(justify="right")
    top = totals.most_common(5)
    if not top or guest.state != State.RUNNING:
        t.add_row(Text("no exits now", style="dim"), "", "")
        return t
    peak = top[0][1] or 1
    for reason, rate in top:
        t.add_row(reason, fmt.bar(rate / peak, width), f"{fmt.human_rate(rate)}/s")
    return t


def ports_table(guest) -> Table:
    counts = collections.Counter(dict(guest.ports))
    t = Table.grid(padding=(0, 2))
    t.add_column(style="cyan")
    t.add_column(justify="right")
    if not counts:
        t.add_row(Text("no port I/O yet", style="dim"), "")
    for port, n in counts.most_common(4):
        t.add_row(f"{port:#06x}", f"{n:,}")
    return t


def vga_tail(screen, n: int) -> list[str]:
    """The last n rows of a VGA screen down to its last non-blank one, trailing spaces cut."""
    lines = [line.rstrip() for line in screen.lines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-n:]


class DetailPanel(Vertical):
    """Registers beside exit bars and ports; then the crash report, then the console tail."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.guest_name: str | None = None
        self.tail = bytearray()
        self._unwatch = None
        self.screen_shown = None          # (guest, TextScreen) last read, for a VGA guest
        self._screen_task: asyncio.Task | None = None

    def on_unmount(self) -> None:
        self._stop_watching()

    def _read_screen(self, name: str) -> None:
        """Fetch the guest's VGA screen for the next refresh (one read at a time)."""
        if self._screen_task is not None and not self._screen_task.done():
            return

        async def read():
            try:
                self.screen_shown = (name, await self.app.monitor.screen(name))
            except HvError:
                self.screen_shown = None
        self._screen_task = asyncio.get_running_loop().create_task(read())

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _watch(self, name: str) -> None:
        """Follow the selected guest's serial console: its recent history, then what comes."""
        self._stop_watching()
        self.tail = bytearray()

        def fed(data: bytes) -> None:
            self.tail += data
            if len(self.tail) > TAIL_BYTES:
                del self.tail[:len(self.tail) - TAIL_BYTES]
        try:
            self._unwatch = self.app.monitor.watch_console(name, SERIAL, fed, replay=TAIL_BYTES)
        except HvError:
            self._unwatch = None

    def compose(self):
        yield Static(id="detail-title")
        with Horizontal(id="detail-top"):
            yield Static(id="detail-registers")
            with Vertical(id="detail-stats"):
                yield Static(id="detail-exits")
                yield Static(id="detail-ports")
        yield Static(id="detail-crash")
        yield Static(id="detail-console")

    def show(self, guest) -> None:
        if guest is None:
            self.guest_name = None
            self._stop_watching()
            self.query_one("#detail-title", Static).update(Text("no guest selected", style="dim"))
            for wid in ("registers", "exits", "ports", "crash", "console"):
                self.query_one(f"#detail-{wid}", Static).update("")
            self.query_one("#detail-crash").display = False
            return
        if guest.name != self.guest_name:
            self.guest_name = guest.name
            self._watch(guest.name)
        title = Text.assemble((guest.name, "bold"), "  ", fmt.state_text(guest.state),
                              f"  {guest.spec.image}  {guest.spec.memory_mib} MiB  "
                              f"resident {fmt.human_bytes(guest.resident_bytes)}")
        if guest.state == State.RUNNING and guest.silent_s >= fmt.SILENT_SHOWN_S:
            title.append(f"  busy: no exits for {guest.silent_s:.0f} s", style="yellow")
        if guest.unowned_accesses:
            title.append(f"  unowned I/O {guest.unowned_accesses:,}", style="dim")
        gdb_line = tui_gdb.status(guest)
        if gdb_line is not None:
            title.append("\n").append(gdb_line)
        if guest.end is not None and guest.end.kind != "crashed":
            title.append(f"  ({guest.end.reason}" + (f", exit {guest.end.exit_code}"
                                                     if guest.end.exit_code is not None else "") + ")")
        if guest.run > 1:
            title.append(f"  run {guest.run}", style="dim")
        self.query_one("#detail-title", Static).update(title)
        per_line = 1 if self.screen.has_class("-narrow") else 3      # an 80-column terminal
        self.query_one("#detail-registers", Static).update(
            Group(Text("Registers", style="bold underline"), registers_table(list(guest.registers), per_line)))
        self.query_one("#detail-exits", Static).update(
            Group(Text("Exit reasons", style="bold underline"), exits_bars(guest)))
        self.query_one("#detail-ports", Static).update(
            Group(Text("Busiest I/O ports", style="bold underline"), ports_table(guest)))
        crash = self.query_one("#detail-crash", Static)
        if guest.crash is not None:
            crash.display = True
            crash.update(Text(guest.crash.report, style="red"))
        else:
            crash.display = False
        title, tail = "Console", fmt.console_tail(self.tail, TAIL_LINES)
        if guest.preferred_console == VGA:
            self._read_screen(guest.name)
            if self.screen_shown is not None and self.screen_shown[0] == guest.name:
                title, tail = "VGA screen", vga_tail(self.screen_shown[1], TAIL_LINES)
        self.query_one("#detail-console", Static).update(
            Group(Text(title, style="bold underline"), Text("\n".join(tail))))
