"""The Host: many machines on one asyncio loop.

It owns their lifecycle (create, pause, resume, stop, kill, remove), turns the machines'
thread-side transitions into events on the loop, fans each guest's console out to its
log file, its scrollback and any subscribers, feeds input into the guest's UART, and
samples stats a few times a second (exits/s by reason per vCPU, vCPU thread CPU time,
resident memory), running the runaway watchdog as it goes. A guest that crashes is
contained: its state, crash report, log and memory stay until it is removed; nothing
else moves. No Textual here: the TUI and the CLI are clients.
"""
from __future__ import annotations

import asyncio
import collections
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from hvtui import images, logs
from hvtui.errors import ConfigError, StateError
from hvtui.keyboard import KeyFeed
from hvtui.vmm import snapshot
from hvtui.vmm.exits import CrashReport
from hvtui.vmm.kvm import VmPool
from hvtui.vmm.machine import Machine, MachineConfig, MachineSample, State

HISTORY_BYTES = 1 << 20      # console scrollback kept per guest
RATE_HISTORY = 120           # samples kept for sparklines
INPUT_RETRY_S = 0.002        # the UART FIFO holds 64 bytes: retry the rest this often
INPUT_LIMIT = 64 * 1024      # COM1 input queued per guest beyond its FIFO: send_input takes no more


def default_log_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "hvtui" / "logs"


@dataclass
class GuestSpec:
    image: str                      # built-in name or path to a kernel (any format vmm/boot knows)
    name: str = ""
    memory_mib: int = 64
    vcpus: int = 1
    cmdline: str | None = None      # None: the image's default
    watchdog_s: float = 0.0         # 0: never crash a silent vCPU (the dashboard shows it)
    disk: str | None = None         # host file for virtio-blk and the emulated ATA disk
    disk_readonly: bool = False
    initrd: list[str] = field(default_factory=list)   # Linux initrd / Multiboot modules ("FILE ARGS")
    exit_code_style: str = "hvtui"  # "qemu": isa-debug-exit's (v << 1) | 1
    overcommit: bool = False        # start it even if the host cannot promise its RAM (vmm/admission.py)

BUSY_CPU_PERCENT = 50     # a vCPU using this much of a host CPU and making no exits is computing
SERIAL, HVC = "serial", "hvc0"      # a guest's two consoles: COM1 and its virtio-console
VGA = "vga"                         # ... and its VGA text screen with the PS/2 keyboard

@dataclass
class HostEvent:
    kind: str                       # "created", "state", "removed", "stats"
    guest: str
    state: State | None = None
    info: dict = field(default_factory=dict)


@dataclass
class VcpuRates:
    exits_per_s: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)
    cpu_percent: float = 0.0
    run_share: float = 0.0          # fraction of wall time inside KVM_RUN


class ConsoleStream:
    """One console of a guest: bounded scrollback, a log file, and subscribers."""

    def __init__(self, log_path: Path, append: bool = False, max_bytes: int = logs.DEFAULT_MAX_BYTES,
                 keep: int = logs.DEFAULT_KEEP):
        self.history = bytearray()
        self.subscribers: list[Callable[[bytes], None]] = []
        # a restored guest's log goes on; a flooding guest's is capped and rotated (logs.py)
        self.log = logs.RotatingLog(log_path, max_bytes, keep, append)
        self.total_bytes = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total_bytes += len(data)
        self.history += data
        if len(self.history) > HISTORY_BYTES:
            del self.history[:len(self.history) - HISTORY_BYTES]
        if not self.log.closed:
            self.log.write(data)
            self.log.flush()
        for cb in list(self.subscribers):
            try:
                cb(data)
            except Exception:
                pass

    def close(self) -> None:
        self.log.close()


class Guest:
    """What the host keeps about one guest, live or ended."""

    def __init__(self, spec: GuestSpec, machine: Machine, log_path: Path, append: bool = False,
                 log_max_bytes: int = logs.DEFAULT_MAX_BYTES, log_keep: int = logs.DEFAULT_KEEP):
        self.spec = spec
        self.name = spec.name
        self.machine = machine
        self.log_path = log_path
        self.serial = ConsoleStream(log_path, append, log_max_bytes, log_keep)
        try:
            self.hvc = ConsoleStream(log_path.with_suffix(".hvc0.log"), append, log_max_bytes, log_keep)
        except BaseException:
            self.serial.close()
            raise
        self.keyboard = KeyFeed(machine)
        self.vga_console = False   # seen drawing on VGA while COM1 and hvc0 were silent
        self.pending_input = bytearray()       # COM1 input not yet in its FIFO, at most INPUT_LIMIT
        self.input_has_room = asyncio.Event()  # set while pending_input has room
        self.input_has_room.set()
        self.created_at = time.monotonic()
        self.last_sample: MachineSample | None = None
        self.vcpu_rates: list[VcpuRates] = [VcpuRates() for _ in machine.vcpus]
        self.exits_history: collections.deque[float] = collections.deque(maxlen=RATE_HISTORY)
        self.cpu_times: dict[int, float] = {}
        self.resident_bytes = 0
        self.ended = asyncio.Event()       # set on the loop once the machine reached an end state
        self.last_exit_at: dict[int, float] = {}   # vCPU -> when its exit count last moved
        self.silent_s = 0.0       # longest a vCPU busy on a host CPU has gone without an exit
        self.unowned_accesses = 0  # port and MMIO accesses no device owns (reads see all ones)

    # the serial console is the guest's main one: its stream's parts under short names
    @property
    def history(self) -> bytearray:
        return self.serial.history

    @property
    def console_subscribers(self) -> list:
        return self.serial.subscribers

    @property
    def log(self):
        return self.serial.log

    @property
    def console_bytes(self) -> int:
        return self.serial.total_bytes

    @property
    def hvc_history(self) -> bytearray:
        return self.hvc.history

    @property
    def hvc_log(self):
        return self.hvc.log

    @property
    def state(self) -> State:
        return self.machine.state

    @property
    def exit_code(self) -> int | None:
        return self.machine.exit_code

    @property
    def crash(self) -> CrashReport | None:
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

    def top_exit_reason(self) -> str:
        totals: collections.Counter = collections.Counter()
        for r in self.vcpu_rates:
            totals.update(r.by_reason)
        return totals.most_common(1)[0][0] if totals else "-"


class Host:
    def __init__(self, log_dir: str | Path | None = None, sample_interval: float = 0.5,
                 spare_vm: bool = True, log_max_bytes: int = logs.DEFAULT_MAX_BYTES,
                 log_keep: int = logs.DEFAULT_KEEP):
        """spare_vm: keep a warmed VM ready for the next guest (a long-lived host); a
        one-shot run does without, so nothing competes with its guest's start."""
        VmPool.keep_spare = spare_vm
        self.log_dir = Path(log_dir) if log_dir else default_log_dir()
        self.sample_interval = sample_interval
        self.log_max_bytes, self.log_keep = log_max_bytes, log_keep
        self.guests: dict[str, Guest] = {}
        self._subscribers: list[Callable[[HostEvent], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sampler: asyncio.Task | None = None
        self._input_tasks: dict[str, asyncio.Task] = {}
        self._process = psutil.Process()
        self._closed = False
        self.gdb: dict[str, object] = {}     # guest name -> its GdbServer (hvtui/gdb)

    async def __aenter__(self) -> Host:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.prepare_log_dir()
        if self._sampler is None:
            self._sampler = self._loop.create_task(self._sample_forever(), name="hvtui-sampler")

    def prepare_log_dir(self) -> None:
        """Make the log directory, or one ConfigError line saying why it cannot be used."""
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ConfigError(f"log directory {self.log_dir}: a file is in the way") from None
        except OSError as e:
            raise ConfigError(f"log directory {self.log_dir}: {e.strerror or e}") from None
        if not self.log_dir.is_dir():
            raise ConfigError(f"log directory {self.log_dir}: not a directory")
        if not os.access(self.log_dir, os.W_OK | os.X_OK):
            raise ConfigError(f"log directory {self.log_dir}: not writable")

    # ---- events ----
    def subscribe(self, callback: Callable[[HostEvent], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _publish(self, event: HostEvent) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                pass

    def _on_machine_event(self, machine: Machine, event: str, info: dict) -> None:
        """Called on a vCPU thread (or wherever the machine moved): hop to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._machine_event_on_loop, machine.name, event, info)

    def _machine_event_on_loop(self, name: str, event: str, info: dict) -> None:
        guest = self.guests.get(name)
        if guest is None:
            return
        state = info.get("state")
        if state is not None and not state.live:
            self._drain(guest)   # the last words of the guest come before its end
            self._log_end(guest)
            guest.ended.set()
            guest.keyboard.close()   # keys it will never read
            guest.input_has_room.set()     # nobody waits to send it input any more
        self._publish(HostEvent(event, name, state, info))

    def _log_end(self, guest: Guest) -> None:
        m = guest.machine
        if m.state == State.CRASHED and m.crash:
            line = "\n[hvtui] " + m.crash.format().replace("\n", "\n[hvtui] ") + "\n"
        else:
            line = f"\n[hvtui] {m.state.value}: {m.stop_reason}" + (
                f", exit status {m.exit_code}" if m.exit_code is not None else "") + "\n"
        if not guest.log.closed:
            guest.log.write(line.encode())
            guest.log.flush()

    # ---- guests ----
    def _unique_name(self, base: str) -> str:
        n = 1
        while f"{base}-{n}" in self.guests:
            n += 1
        return f"{base}-{n}"

    async def create(self, spec: GuestSpec, start: bool = True) -> Guest:
        if self._loop is None:
            self.start()
        if not spec.name:
            spec.name = self._unique_name(os.path.basename(spec.image).removesuffix(".elf"))
        if spec.name in self.guests:
            raise ConfigError(f"a guest named {spec.name!r} already exists")
        path = images.resolve(spec.image)
        cmdline = images.default_cmdline(spec.image) if spec.cmdline is None else spec.cmdline
        config = MachineConfig(name=spec.name, image=path, memory_mib=spec.memory_mib,
                               vcpus=spec.vcpus, cmdline=cmdline, watchdog_s=spec.watchdog_s,
                               disk=spec.disk, disk_readonly=spec.disk_readonly, initrd=list(spec.initrd),
                               exit_code_style=spec.exit_code_style, overcommit=spec.overcommit)
        machine = await asyncio.to_thread(Machine, config, self._on_machine_event)
        return self._adopt(spec, machine, start)

    def _adopt(self, spec: GuestSpec, machine: Machine, start: bool, **info) -> Guest:
        """Give a built machine its logs and readers; if that fails, the machine is destroyed
        (nothing half-built is left behind) and the error is one line."""
        restored = info.get("restored_from")
        try:
            guest = Guest(spec, machine, self.log_dir / f"{spec.name}.log", append=bool(restored),
                          log_max_bytes=self.log_max_bytes, log_keep=self.log_keep)
        except BaseException as e:
            machine.destroy()
            if isinstance(e, OSError):
                raise ConfigError(f"{spec.name}: cannot open its console log in {self.log_dir}: "
                                  f"{e.strerror or e}") from None
            raise
        if restored:
            guest.log.write(f"\n[hvtui] restored from {restored}\n".encode())
            guest.log.flush()
        self.guests[spec.name] = guest
        self._loop.add_reader(machine.console_fd, self._drain, guest)
        self._loop.add_reader(machine.board.hvc_fd, self._drain_hvc, guest)
        self._publish(HostEvent("created", spec.name, machine.state, info))
        if start:
            machine.start()
        return guest

    # ---- snapshots ----
    async def snapshot(self, name: str, path: str | os.PathLike) -> dict:
        """Save a live guest to path (a running one pauses, is saved, resumes). Returns the
        summary of snapshot.write, with console_offset: the console bytes it had sent."""
        guest = self.get(name)
        info = await asyncio.to_thread(guest.machine.snapshot, os.fspath(path))
        self._publish(HostEvent("snapshot", name, guest.state, info))
        return info

    async def restore(self, path: str | os.PathLike, name: str | None = None, start: bool = True,
                      **overrides) -> Guest:
        """A new guest continuing the snapshot at path. The file is verified (and this host's
        CPU checked) before anything is created. Default name: the snapshot's, or a free variant.
        overrides replace fields of the saved configuration: disk and disk_readonly (the
        snapshot's disk is opened read-write unless told otherwise: say so to the user
        first, snapshot.verify(path)["disk"]), overcommit."""
        unknown = set(overrides) - {"disk", "disk_readonly", "overcommit"}
        if unknown:
            raise TypeError(f"restore() does not override {', '.join(sorted(unknown))}")
        if self._loop is None:
            self.start()
        path = os.fspath(path)
        if name is not None and name in self.guests:
            raise ConfigError(f"a guest named {name!r} already exists")

        def build() -> Machine:
            with snapshot.open_snapshot(path) as snap:
                base = snap.config["name"]
                chosen = name or (base if base not in self.guests else self._unique_name(base))
                return Machine.from_snapshot(snap, chosen, self._on_machine_event, **overrides)
        machine = await asyncio.to_thread(build)
        if machine.name in self.guests:      # taken while we built it
            machine.destroy()
            raise ConfigError(f"a guest named {machine.name!r} already exists")
        c = machine.config
        spec = GuestSpec(image=c.image, name=c.name, memory_mib=c.memory_mib, vcpus=c.vcpus,
                         cmdline=c.cmdline, watchdog_s=c.watchdog_s, disk=c.disk, disk_readonly=c.disk_readonly,
                         initrd=list(c.initrd), exit_code_style=c.exit_code_style, overcommit=c.overcommit)
        return self._adopt(spec, machine, start, restored_from=path)

    async def clone(self, path: str | os.PathLike, names: list[str], start: bool = True) -> list[Guest]:
        """Restore the same snapshot once per name: independent guests side by side."""
        return [await self.restore(path, name=n, start=start) for n in names]

    def get(self, name: str) -> Guest:
        try:
            return self.guests[name]
        except KeyError:
            raise ConfigError(f"no guest named {name!r}") from None

    async def pause(self, name: str) -> None:
        await asyncio.to_thread(self.get(name).machine.pause)

    async def resume(self, name: str) -> None:
        self.get(name).machine.resume()

    async def stop(self, name: str) -> None:
        await asyncio.to_thread(self.get(name).machine.stop)

    async def kill(self, name: str) -> None:
        guest = self.get(name)
        guest.machine.kill()
        await asyncio.to_thread(guest.machine.join, 5.0)

    async def remove(self, name: str) -> None:
        guest = self.get(name)
        if guest.state.live:
            raise StateError(f"{name} is {guest.state.value}; stop or kill it before removing it")
        await asyncio.to_thread(guest.machine.join, 5.0)
        self._drain(guest)
        self._loop.remove_reader(guest.machine.console_fd)
        self._loop.remove_reader(guest.machine.board.hvc_fd)
        self._drain_hvc(guest)
        task = self._input_tasks.pop(name, None)
        if task:
            task.cancel()
        server = self.gdb.pop(name, None)
        if server is not None:
            await server.close()
        guest.keyboard.close()
        guest.machine.destroy()
        guest.serial.close()
        guest.hvc.close()
        del self.guests[name]
        self._publish(HostEvent("removed", name))

    # ---- gdb ----
    async def serve_gdb(self, name: str, address: tuple[str, int] = ("127.0.0.1", 1234), wait: bool = False):
        """The guest's gdb server (hvtui/gdb), started on this loop if it has none yet; with
        wait, its vCPUs are held before their first instruction until a debugger lets them go."""
        from hvtui.gdb.server import GdbServer
        if name in self.gdb:
            return self.gdb[name]
        server = GdbServer(self, name, address, wait)
        await server.start()
        self.gdb[name] = server
        return server

    # ---- console ----
    def _drain(self, guest: Guest) -> None:
        guest.serial.feed(guest.machine.read_console())

    def _drain_hvc(self, guest: Guest) -> None:
        guest.hvc.feed(guest.machine.board.read_hvc())

    def console_subscribe(self, name: str, callback: Callable[[bytes], None],
                          console: str = SERIAL) -> Callable[[], None]:
        """Call callback with every chunk the guest writes to console (SERIAL or HVC)."""
        guest = self.get(name)
        subscribers = (guest.hvc if console == HVC else guest.serial).subscribers
        subscribers.append(callback)

        def unsubscribe():
            if callback in subscribers:
                subscribers.remove(callback)
        return unsubscribe

    def send_input(self, name: str, data: bytes, console: str = SERIAL) -> int:
        """Queue bytes for the guest's COM1 (they enter its 64-byte FIFO as it drains), or
        for its virtio-console (delivered as the guest posts receive buffers). Both queues
        are bounded (INPUT_LIMIT, virtio-console's INPUT_LIMIT): returns how many bytes were
        taken; the rest is the caller's to send again once there is room
        (wait_input_room), or to drop."""
        guest = self.get(name)
        if not guest.state.live:
            raise StateError(f"{name} is {guest.state.value}; it takes no input")
        if console == HVC:
            return guest.machine.board.push_hvc_input(data)
        taken = data[:max(0, INPUT_LIMIT - len(guest.pending_input))]
        guest.pending_input += taken
        if len(guest.pending_input) >= INPUT_LIMIT:
            guest.input_has_room.clear()
        task = self._input_tasks.get(name)
        if taken and (task is None or task.done()):
            self._input_tasks[name] = self._loop.create_task(self._feed_input(guest))
        return len(taken)

    def input_room(self, name: str) -> int:
        """Bytes send_input would take now for the guest's COM1."""
        return max(0, INPUT_LIMIT - len(self.get(name).pending_input))

    def input_pending(self, name: str) -> int:
        """COM1 input the guest has not read yet: queued here and waiting in its FIFO."""
        guest = self.get(name)
        fifo = guest.machine.vm.uart_stats().get("rx_pending", 0) if guest.machine.vm else 0
        return len(guest.pending_input) + fifo

    async def wait_input_room(self, name: str) -> None:
        """Return once send_input has room for COM1 input again (or the guest ended)."""
        guest = self.get(name)
        while guest.state.live and not self.input_room(name):
            await guest.input_has_room.wait()

    async def _feed_input(self, guest: Guest) -> None:
        while guest.pending_input and guest.state.live:
            n = guest.machine.push_input(bytes(guest.pending_input[:64]))
            del guest.pending_input[:n]
            if len(guest.pending_input) <= INPUT_LIMIT // 2:
                guest.input_has_room.set()
            if guest.pending_input:
                await asyncio.sleep(INPUT_RETRY_S)
        guest.input_has_room.set()

    # ---- the VGA screen and the PS/2 keyboard ----
    def send_keys(self, name: str, keys: list[int]) -> None:
        """Queue PS/2 keys (hvtui.ps2keys codes) for the guest's keyboard."""
        guest = self.get(name)
        if not guest.state.live:
            raise StateError(f"{name} is {guest.state.value}; it takes no input")
        guest.keyboard.send(keys)

    def vga_screen(self, name: str):
        """The guest's VGA text screen now (hvtui.textscreen.TextScreen)."""
        return self.get(name).machine.vga_screen()

    def preferred_console(self, name: str) -> str:
        """VGA for a guest seen drawing on its VGA screen while it had written nothing to
        COM1 or hvc0 (it stays so once seen), else SERIAL."""
        guest = self.get(name)
        if not guest.vga_console and guest.console_bytes == 0 and guest.hvc.total_bytes == 0:
            guest.vga_console = guest.machine.vga_screen().used
        return VGA if guest.vga_console else SERIAL

    async def wait_for_output(self, name: str, needle: bytes, timeout: float = 10.0,
                              start: int = 0, console: str = SERIAL) -> int:
        """Wait until needle appears in the guest's console after offset start; its offset."""
        guest = self.get(name)
        deadline = self._loop.time() + timeout
        while True:
            self._drain(guest)
            self._drain_hvc(guest)
            i = (guest.hvc_history if console == HVC else guest.history).find(needle, start)
            if i >= 0:
                return i
            if self._loop.time() > deadline:
                raise TimeoutError(f"{name}: {needle!r} did not appear within {timeout}s")
            if not guest.state.live:
                raise StateError(f"{name} ended ({guest.machine.stop_reason}) before printing {needle!r}")
            await asyncio.sleep(0.01)

    async def wait_until_ended(self, name: str, timeout: float | None = None) -> Guest:
        guest = self.get(name)
        if guest.state.live:
            try:
                await asyncio.wait_for(guest.ended.wait(), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(f"{name} still {guest.state.value} after {timeout}s") from None
        if not guest.machine.join(0):
            await asyncio.to_thread(guest.machine.join, 5.0)
        self._drain(guest)
        return guest

    # ---- stats ----
    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sample_interval)
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass   # sampling must never take the host down

    async def sample_once(self) -> None:
        live = [g for g in self.guests.values() if g.state.live and g.machine.vm is not None]
        if not live:
            return
        try:
            thread_times = {t.id: t.user_time + t.system_time for t in self._process.threads()}
        except psutil.Error:
            thread_times = {}
        for guest in live:
            self._update_rates(guest, guest.machine.sample(), thread_times)
        for guest in live:
            if guest.state == State.RUNNING and guest.spec.watchdog_s > 0:
                await asyncio.to_thread(guest.machine.check_runaway)
        self._publish(HostEvent("stats", ""))

    def _update_rates(self, guest: Guest, sample: MachineSample, thread_times: dict) -> None:
        prev = guest.last_sample
        guest.last_sample = sample
        guest.resident_bytes = sample.resident_bytes
        guest.unowned_accesses = sample.unowned
        for v in sample.vcpus:
            if prev is None or v.total_exits != prev.vcpus[v.index].total_exits:
                guest.last_exit_at[v.index] = sample.time
        if prev is None:
            for v in sample.vcpus:
                guest.cpu_times[v.thread_id] = thread_times.get(v.thread_id, 0.0)
            return
        dt = max(sample.time - prev.time, 1e-6)
        for v, p in zip(sample.vcpus, prev.vcpus):
            rates = guest.vcpu_rates[v.index]
            rates.by_reason = {k: (n - p.exits.get(k, 0)) / dt for k, n in v.exits.items()
                               if n - p.exits.get(k, 0) > 0}
            rates.exits_per_s = (v.total_exits - p.total_exits) / dt
            rates.run_share = min(1.0, (v.ns_in_run - p.ns_in_run) / 1e9 / dt)
            cpu_now = thread_times.get(v.thread_id)
            if cpu_now is not None:
                before = guest.cpu_times.get(v.thread_id, cpu_now)
                rates.cpu_percent = max(0.0, (cpu_now - before) / dt * 100)
                guest.cpu_times[v.thread_id] = cpu_now
        guest.exits_history.append(guest.exits_per_s)
        guest.silent_s = max((sample.time - guest.last_exit_at.get(v.index, sample.time)
                              for v, r in zip(sample.vcpus, guest.vcpu_rates) if r.cpu_percent >= BUSY_CPU_PERCENT),
                             default=0.0)

    # ---- shutdown ----
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sampler:
            self._sampler.cancel()
        for task in self._input_tasks.values():
            task.cancel()
        for guest in list(self.guests.values()):
            if guest.state.live:
                guest.machine.kill()
        for name in list(self.guests):
            await self.remove(name)
