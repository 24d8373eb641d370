"""The detail panel of the selected guest: registers, exit reasons as bars, busiest I/O
ports and the tail of its console (of its VGA screen, for a guest whose console that is);
a crashed guest's crash report stays here.

Registers come from the crash report (the vCPU that crashed), or from the vCPUs when the
guest is paused or ended (read once per state and cached); a running guest shows "running".
"""
from __future__ import annotations

import collections

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from hvtui.host import VGA
from hvtui.tui import format as fmt
from hvtui.tui import gdb as tui_gdb
from hvtui.vmm.machine import State

REGISTERS = [("RIP", "rip"), ("RSP", "rsp"), ("RFLAGS", "rflags"), ("CR0", "cr0"), ("CR3", "cr3"),
             ("CR4", "cr4"), ("EFER", "efer")]
TAIL_LINES = 14


def guest_registers(guest, cache: dict) -> list[dict | str]:
    """Per vCPU: a register dict, or a word saying why there is none."""
    n = guest.spec.vcpus
    if guest.state == State.RUNNING and not guest.machine.debug_stopped:
        return ["running"] * n
    if guest.state == State.CREATED:
        return ["not started"] * n
    key = (guest.name, guest.state, guest.machine.started_at, guest.machine.ended_at,
           guest.machine.debug_stopped and guest.machine.debug and guest.machine.debug.stops)
    if cache.get("key") == key:
        return cache["regs"]
    out: list[dict | str] = []
    crash = guest.crash
    for i in range(n):
        if crash is not None and crash.vcpu == i and crash.registers:
            out.append(crash.registers)
            continue
        try:
            out.append(guest.machine.registers(i))
        except Exception:
            out.append(guest.state.value)
    cache.update(key=key, regs=out)
    return out


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
    totals: collections.Counter = collections.Counter()
    for r in guest.vcpu_rates:
        totals.update(r.by_reason)
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
    counts: collections.Counter = collections.Counter()
    if guest.last_sample is not None:
        for v in guest.last_sample.vcpus:
            counts.update(v.ports)
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
        self._reg_cache: dict = {}
        self.guest_name: str | None = None

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
            self.query_one("#detail-title", Static).update(Text("no guest selected", style="dim"))
            for wid in ("registers", "exits", "ports", "crash", "console"):
                self.query_one(f"#detail-{wid}", Static).update("")
            self.query_one("#detail-crash").display = False
            return
        if guest.name != self.guest_name:
            self._reg_cache.clear()
            self.guest_name = guest.name
        title = Text.assemble((guest.name, "bold"), "  ", fmt.state_text(guest.state),
                              f"  {guest.spec.image}  {guest.spec.memory_mib} MiB  "
                              f"resident {fmt.human_bytes(guest.resident_bytes)}")
        if guest.state == State.RUNNING and guest.silent_s >= fmt.SILENT_SHOWN_S:
            title.append(f"  busy: no exits for {guest.silent_s:.0f} s", style="yellow")
        if guest.unowned_accesses:
            title.append(f"  unowned I/O {guest.unowned_accesses:,}", style="dim")
        gdb_line = tui_gdb.status(guest, self.app.host)
        if gdb_line is not None:
            title.append("\n").append(gdb_line)
        if guest.state == State.STOPPED:
            m = guest.machine
            title.append(f"  ({m.stop_reason}" + (f", exit {m.exit_code}" if m.exit_code is not None else "") + ")")
        self.query_one("#detail-title", Static).update(title)
        per_line = 1 if self.screen.has_class("-narrow") else 3      # an 80-column terminal
        self.query_one("#detail-registers", Static).update(
            Group(Text("Registers", style="bold underline"),
                  registers_table(guest_registers(guest, self._reg_cache), per_line)))
        self.query_one("#detail-exits", Static).update(
            Group(Text("Exit reasons", style="bold underline"), exits_bars(guest)))
        self.query_one("#detail-ports", Static).update(
            Group(Text("Busiest I/O ports", style="bold underline"), ports_table(guest)))
        crash = self.query_one("#detail-crash", Static)
        if guest.crash is not None:
            crash.display = True
            crash.update(Text(guest.crash.format(), style="red"))
        else:
            crash.display = False
        title, tail = "Console", None
        if self.app.host.preferred_console(guest.name) == VGA:
            title, tail = "VGA screen", vga_tail(self.app.host.vga_screen(guest.name), TAIL_LINES)
        if tail is None:
            tail = fmt.console_tail(guest.history, TAIL_LINES)
        self.query_one("#detail-console", Static).update(
            Group(Text(title, style="bold underline"), Text("\n".join(tail))))
