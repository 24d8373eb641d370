"""One guest as the Host keeps it, live or ended, across its runs: its spec and machine
(machine_config and spec_of map one to the other), its consoles (scrollback, this run's
log, watchers), its input queue and keyboard, the rates the Host samples, and the
api.GuestView a client sees of it. The Host (host.py) owns the lifecycle; this module
only describes a guest.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

from hvtui import api, images, logs
from hvtui.api import HVC, SERIAL, VGA, Boot, GuestSpec
from hvtui.keyboard import KeyFeed
from hvtui.vmm.machine import Machine, MachineConfig, MachineSample, State

log = logging.getLogger("hvtui")

HISTORY_BYTES = 1 << 20      # console scrollback kept per guest
RATE_HISTORY = 120           # samples kept for sparklines
TOP_PORTS = 8


# ---- the spec and the machine's config: one mapping each way ----
def machine_config(spec: GuestSpec) -> MachineConfig:
    """The MachineConfig that boots spec (images resolved, the image's default cmdline)."""
    b = spec.boot
    return MachineConfig(name=spec.name, image=images.resolve(spec.image), memory_mib=spec.memory_mib,
                         vcpus=spec.vcpus, watchdog_s=spec.watchdog_s, disk=spec.disk,
                         disk_readonly=spec.disk_readonly, initrd=list(b.initrd), exit_code_style=b.exit_code,
                         cmdline=images.default_cmdline(spec.image) if b.cmdline is None else b.cmdline,
                         overcommit=spec.overcommit)


def spec_of(config: MachineConfig) -> GuestSpec:
    """machine_config's inverse: the spec that boots this machine again (a restored one)."""
    return GuestSpec(image=images.builtin_name(config.image), name=config.name, memory_mib=config.memory_mib, vcpus=config.vcpus,
                     watchdog_s=config.watchdog_s, disk=config.disk, disk_readonly=config.disk_readonly,
                     overcommit=config.overcommit, boot=Boot(cmdline=config.cmdline, initrd=tuple(config.initrd),
                               exit_code=config.exit_code_style))


class ConsoleStream:
    """One console of a guest: bounded scrollback, this run's log file, and watchers."""

    def __init__(self):
        self.history = bytearray()
        self.watchers: list[Callable[[bytes], None]] = []
        self.log = None
        self.log_path: Path | None = None
        self.total_bytes = 0

    def open_log(self, path: Path, max_bytes: int = logs.DEFAULT_MAX_BYTES, keep: int = logs.DEFAULT_KEEP) -> None:
        """This run's log: capped and rotated (logs.py), so a flooding guest cannot fill the disk."""
        self.close()
        self.log_path = path
        self.log = logs.RotatingLog(path, max_bytes, keep)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total_bytes += len(data)
        self.history += data
        if len(self.history) > HISTORY_BYTES:
            del self.history[:len(self.history) - HISTORY_BYTES]
        self.write_log(data)
        for cb in list(self.watchers):
            try:
                cb(data)
            except Exception:
                log.exception("a console watcher failed")

    def write_log(self, data: bytes) -> None:
        if self.log is not None and not self.log.closed:
            self.log.write(data)
            self.log.flush()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


@dataclasses.dataclass
class VcpuRates:
    exits_per_s: float = 0.0
    by_reason: dict[str, float] = dataclasses.field(default_factory=dict)
    cpu_percent: float = 0.0
    run_share: float = 0.0          # fraction of wall time inside KVM_RUN


class Guest:
    """What the host keeps about one guest, live or ended, across its runs."""

    def __init__(self, spec: GuestSpec, machine: Machine):
        self.spec = spec
        self.name = spec.name
        self.machine = machine
        self.run = 0
        self.restored_from = ""
        self.consoles = {SERIAL: ConsoleStream(), HVC: ConsoleStream()}
        self.keyboard: KeyFeed | None = None     # the PS/2 keyboard's queue of this run
        self.pending_input = bytearray()       # COM1 input not yet in its FIFO, at most INPUT_LIMIT
        self.input_has_room = asyncio.Event()  # set while pending_input has room
        self.input_has_room.set()
        self.attached = 0           # interactive console clients (their guest gets a better nice)
        self.gdb = None             # its gdb server (hvtui/gdb), when it has one
        self.debug_stop = ""        # what the debugger last stopped it for
        self._reg_cache: tuple | None = None
        self.reset_stats(machine)

    def reset_stats(self, machine: Machine) -> None:
        """A (new) run's machine: its stats start over, and its keyboard's queue."""
        self.machine = machine
        if self.keyboard is not None:
            self.keyboard.close()
        self.keyboard = KeyFeed(machine)
        self.vga_console = False    # seen drawing on VGA while COM1 and hvc0 were silent
        self.last_sample: MachineSample | None = None
        self.vcpu_rates: list[VcpuRates] = [VcpuRates() for _ in machine.vcpus]
        self.exits_history: collections.deque[float] = collections.deque(maxlen=RATE_HISTORY)
        self.resident_bytes = 0
        self.ended = asyncio.Event()       # set on the loop once the machine reached an end state
        self.last_exit_at: dict[int, float] = {}   # vCPU -> when its exit count last moved
        self.cpu_at_last_exit: dict[int, float | None] = {}   # vCPU -> its thread's CPU seconds then
        self.silent_s = 0.0
        self.unowned_accesses = 0
        self._reg_cache = None

    # the serial console is the guest's main one
    @property
    def serial(self) -> ConsoleStream:
        return self.consoles[SERIAL]

    @property
    def hvc(self) -> ConsoleStream:
        return self.consoles[HVC]

    @property
    def history(self) -> bytearray:
        return self.serial.history

    @property
    def hvc_history(self) -> bytearray:
        return self.hvc.history

    @property
    def log_path(self) -> Path:
        return self.serial.log_path

    @property
    def log(self):
        return self.serial.log

    @property
    def hvc_log(self):
        return self.hvc.log

    @property
    def console_watchers(self) -> list:
        return self.serial.watchers

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def exit_code(self) -> int | None:
        return self.machine.exit_code

    @property
    def crash(self):
        return self.machine.crash

    @property
    def uptime(self) -> float:
        m = self.machine
        if m.started_at is None:
            return 0.0
        return (m.ended_at or time.monotonic()) - m.started_at

    @property
    def exits_per_s(self) -> float:
        return sum(r.exits_per_s for r in self.vcpu_rates)

    @property
    def cpu_percent(self) -> float:
        return sum(r.cpu_percent for r in self.vcpu_rates)

    def input_pending(self) -> int:
        """COM1 input the guest has not read yet: queued in the host and in its FIFO."""
        vm = self.machine.vm
        return len(self.pending_input) + (vm.uart_stats().get("rx_pending", 0) if vm is not None else 0)

    def preferred_console(self) -> str:
        """VGA for a guest seen drawing on its VGA screen while it had written nothing to
        COM1 or hvc0 (it stays so once seen), else SERIAL."""
        if not self.vga_console and self.serial.total_bytes == 0 and self.hvc.total_bytes == 0 \
                and self.machine.board is not None:
            self.vga_console = self.machine.vga_screen().used
        return VGA if self.vga_console else SERIAL

    def by_reason(self) -> dict[str, float]:
        totals: collections.Counter = collections.Counter()
        for r in self.vcpu_rates:
            totals.update(r.by_reason)
        return dict(totals)

    def top_exit_reason(self) -> str:
        totals = self.by_reason()
        return max(totals, key=totals.get) if totals else "-"

    # ---- what a client sees ----
    def end(self) -> api.End | None:
        m = self.machine
        if m.state.live:
            return None
        if m.state == State.CRASHED:
            return api.End("crashed", m.crash.summary() if m.crash else m.stop_reason)
        if m.exit_code is not None:
            return api.End("exited", m.stop_reason, m.exit_code, m.exit_status)
        return api.End("killed" if m.stop_reason == "killed" else "stopped", m.stop_reason)

    def crash_view(self) -> api.Crash | None:
        c = self.machine.crash
        if c is None:
            return None
        return api.Crash(reason=c.reason, detail=c.detail, vcpu=c.vcpu, registers=dict(c.registers),
                         instruction=c.instruction.hex(" "), summary=c.summary(), report=c.format())

    def registers(self) -> tuple:
        """Per vCPU: registers of a paused, ended or debugger-held guest (read once per
        state and stop), or why not."""
        m, n = self.machine, self.spec.vcpus
        held = m.state.live and m.debug_stopped
        if m.state == State.RUNNING and not held:
            return ("running",) * n
        if m.state == State.CREATED and not held:
            return ("not started",) * n
        key = (self.run, m.state, m.started_at, m.ended_at, held and m.debug is not None and m.debug.stops)
        if self._reg_cache and self._reg_cache[0] == key:
            return self._reg_cache[1]
        out = []
        for i in range(n):
            if m.crash is not None and m.crash.vcpu == i and m.crash.registers:
                out.append(dict(m.crash.registers))
                continue
            try:
                out.append(m.registers(i))
            except Exception:
                out.append(m.state.value)
        self._reg_cache = (key, tuple(out))
        return self._reg_cache[1]

    def view(self) -> api.GuestView:
        m = self.machine
        ports: collections.Counter = collections.Counter()
        if self.last_sample is not None:
            for v in self.last_sample.vcpus:
                ports.update(v.ports)
        return api.GuestView(
            name=self.name, state=api.State(m.state.value), spec=self.spec, end=self.end(),
            crash=self.crash_view(), run=self.run, boot_protocol=m.boot_protocol,
            consoles=(*self.consoles, VGA), preferred_console=self.preferred_console(),
            input_pending=self.input_pending() if m.state.live else 0,
            console_bytes={k: c.total_bytes for k, c in self.consoles.items()},
            log=str(self.log_path or ""), uptime_s=self.uptime, exits_per_s=self.exits_per_s,
            exits_history=tuple(self.exits_history), by_reason=self.by_reason(), cpu_percent=self.cpu_percent,
            vcpu_rates=tuple(api.VcpuRates(r.exits_per_s, dict(r.by_reason), r.cpu_percent, r.run_share)
                             for r in self.vcpu_rates),
            ports=tuple(ports.most_common(TOP_PORTS)), resident_bytes=self.resident_bytes,
            silent_s=self.silent_s, unowned_accesses=self.unowned_accesses, registers=self.registers(),
            threads=tuple(t.native_id for t in m._threads if t.native_id is not None and t.is_alive()),
            restored_from=self.restored_from,
            gdb=self.gdb.target_remote if self.gdb is not None else "",
            gdb_client=(self.gdb.client or "") if self.gdb is not None else "",
            debug_stopped=m.state.live and m.debug_stopped,
            debug_stop=self.debug_stop if m.state.live and m.debug_stopped else "")
