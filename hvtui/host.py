"""The Host: many machines on one asyncio loop.

It owns their lifecycle (create, start again, pause, resume, stop, kill, reset, remove),
checked against the one table of hvtui.api; turns the machines' thread-side transitions
into typed api events on the loop; fans each guest's consoles out to a log file per run,
a scrollback and any watchers; feeds input into the guest; and samples stats a few times
a second (exits/s by reason per vCPU, vCPU thread CPU time, resident memory), running the
runaway watchdog as it goes. A guest that crashes is contained: its state, crash report,
log and memory stay until it is removed; nothing else moves. What it keeps of each
guest is a guest.Guest; the console logs' names and files are logs.py's. Clients see it
through hvtui.monitor (the api.Monitor of this Host); no Textual here.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Callable

from hvtui import api, logs, paths
from hvtui.api import HVC, SERIAL, VGA, GuestSpec
from hvtui.errors import ConfigError, HvError, StateError
from hvtui.guest import ConsoleStream, Guest, machine_config, spec_of
from hvtui.logs import next_run, point_latest, run_log
from hvtui.vmm.kvm import VmPool
from hvtui.vmm.machine import Machine, MachineConfig, MachineSample, State

log = logging.getLogger("hvtui")

INPUT_RETRY_S = 0.002        # the UART FIFO holds 64 bytes: retry the rest this often
INPUT_LIMIT = 64 * 1024      # COM1 input queued per guest beyond its FIFO: send_input takes no more
BUSY_CPU_PERCENT = 20        # a silent vCPU whose thread used this share of a host CPU since is computing


class Host:
    def __init__(self, log_dir: str | Path | None = None, sample_interval: float = 0.5,
                 vcpu_nice: int = 0, console_nice: int = 0, spare_vm: bool = True,
                 log_max_bytes: int = logs.DEFAULT_MAX_BYTES, log_keep: int = logs.DEFAULT_KEEP):
        """spare_vm: keep a warmed VM ready for the next guest (a long-lived host); a
        one-shot run does without, so nothing competes with its guest's start.
        vcpu_nice, console_nice: niceness of vCPU threads (0: leave them), see _set_nice.
        log_max_bytes, log_keep: each console log's cap and its rotated files kept."""
        VmPool.keep_spare = spare_vm
        self.log_dir = Path(log_dir) if log_dir else paths.log_dir()
        self.sample_interval = sample_interval
        self.log_max_bytes, self.log_keep = log_max_bytes, log_keep
        self.vcpu_nice, self.console_nice = vcpu_nice, console_nice
        self.guests: dict[str, Guest] = {}
        self._subscribers: list[Callable[[api.Event], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sampler: asyncio.Task | None = None
        self._input_tasks: dict[str, asyncio.Task] = {}
        self._busy: set[str] = set()          # names being created, restored or reset
        self._closed = False

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

    @property
    def api(self):
        """This host as an api.Monitor (what clients and the daemon's socket use)."""
        from hvtui.monitor import HostMonitor
        return HostMonitor(self)

    # ---- events ----
    def subscribe(self, callback: Callable[[api.Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, event: api.Event) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:
                log.exception("an event subscriber failed")

    def _changed(self, guest: Guest, previous: State | None) -> None:
        self.publish(api.GuestChanged(guest.view(), api.State(previous.value) if previous else None))

    def _on_machine_event(self, machine: Machine, event: str, info: dict) -> None:
        """Called on a vCPU thread (or wherever the machine moved): hop to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._machine_event_on_loop, machine, event, info)

    def _machine_event_on_loop(self, machine: Machine, event: str, info: dict) -> None:
        guest = self.guests.get(machine.name)
        if guest is None or guest.machine is not machine:
            return          # a machine that was replaced (reset, started again) or removed
        if event == "debug":
            self._debugger_event(guest, info)
            return
        state = info.get("state")
        if state is not None and not state.live:
            self._drain(guest)   # the last words of the guest come before its end
            self._log_end(guest)
            guest.ended.set()
            if guest.keyboard is not None:
                guest.keyboard.close()   # keys it will never read
            guest.input_has_room.set()   # nobody waits to send it input any more
        if state == State.RUNNING:
            self._set_nice(guest)
        self._changed(guest, None)

    def _debugger_event(self, guest: Guest, info: dict) -> None:
        """The gdb server's news (hvtui/gdb): attached, detached, stopped, running, refused."""
        what = next((k for k in ("attached", "detached", "stopped", "running", "refused") if k in info), "")
        if not what:
            return
        detail = "" if info[what] is True else str(info[what])
        if what == "stopped":
            guest.debug_stop = detail
        elif what in ("running", "detached"):
            guest.debug_stop = ""
        self.publish(api.DebuggerEvent(guest.view(), what, detail))

    def _log_end(self, guest: Guest) -> None:
        m = guest.machine
        if m.state == State.CRASHED and m.crash:
            line = "\n[hvtui] " + m.crash.format().replace("\n", "\n[hvtui] ") + "\n"
        else:
            line = f"\n[hvtui] {m.state.value}: {m.stop_reason}" + (
                f", exit status {m.exit_code}" if m.exit_code is not None else "") + "\n"
        guest.serial.write_log(line.encode())

    # ---- guests ----
    def _unique_name(self, base: str) -> str:
        n = 1
        while f"{base}-{n}" in self.guests or f"{base}-{n}" in self._busy:
            n += 1
        return f"{base}-{n}"

    @contextlib.contextmanager
    def _claim(self, name: str):
        """Hold a name while its machine is built off the loop (no two creates race for it)."""
        if name in self.guests or name in self._busy:
            raise ConfigError(f"a guest named {name!r} already exists")
        self._busy.add(name)
        try:
            yield
        finally:
            self._busy.discard(name)

    async def create(self, spec: GuestSpec, start: bool = True) -> Guest:
        if self._loop is None:
            self.start()
        api.check_spec(spec)
        if not spec.name:
            spec = dataclasses.replace(spec, name=self._unique_name(os.path.basename(spec.image).removesuffix(".elf")))
        with self._claim(spec.name):
            config = machine_config(spec)
            machine = await asyncio.to_thread(Machine, config, self._on_machine_event)
        return self._adopt(spec, machine, start)

    def _adopt(self, spec: GuestSpec, machine: Machine, start: bool, restored_from: str = "") -> Guest:
        """Give a built machine its logs and readers; if that fails, the machine is destroyed
        (nothing half-built is left behind) and the error is one line."""
        guest = Guest(spec, machine)
        guest.restored_from = restored_from
        try:
            self._new_run(guest, machine)
        except BaseException as e:
            for stream in guest.consoles.values():
                stream.close()
            machine.destroy()
            if isinstance(e, OSError):
                raise ConfigError(f"{spec.name}: cannot open its console log in {self.log_dir}: "
                                  f"{e.strerror or e}") from None
            raise
        self.guests[spec.name] = guest
        self.publish(api.GuestAdded(guest.view()))
        if start:
            machine.start()
        return guest

    def _new_run(self, guest: Guest, machine: Machine) -> None:
        """Wire a (new) machine to the guest: this run's log files, the console readers."""
        guest.reset_stats(machine)
        guest.run = next_run(self.log_dir, guest.name)
        for console, stream in guest.consoles.items():
            path = run_log(self.log_dir, guest.name, guest.run, console)
            stream.open_log(path, self.log_max_bytes, self.log_keep)
            point_latest(self.log_dir, guest.name, path, console)
        if guest.restored_from:
            guest.serial.write_log(f"[hvtui] restored from {guest.restored_from}\n".encode())
        self._loop.add_reader(machine.console_fd, self._drain, guest)
        self._loop.add_reader(machine.board.hvc_fd, self._drain_hvc, guest)

    def _unwire(self, guest: Guest) -> None:
        """The console readers of the guest's machine off the loop, its last bytes read."""
        m = guest.machine
        if m.vm is None:
            return
        self._drain(guest)
        self._drain_hvc(guest)
        with contextlib.suppress(Exception):
            self._loop.remove_reader(m.console_fd)
        with contextlib.suppress(Exception):
            self._loop.remove_reader(m.board.hvc_fd)

    async def start_guest(self, name: str) -> Guest:
        """Start a created guest, or boot an ended one again from its spec (a new run)."""
        guest = self.get(name)
        api.check("start", name, guest.state)
        if guest.state == State.CREATED:
            guest.machine.start()
            return guest
        await self._replace_machine(guest, machine_config(guest.spec))
        return guest

    async def reset(self, name: str) -> Guest:
        """A hard reset: the running (or paused) guest ends and boots again from its spec."""
        guest = self.get(name)
        api.check("reset", name, guest.state)
        old = guest.machine
        old.on_event = lambda *a: None        # its end is not news: the guest goes on
        await asyncio.to_thread(old.stop, "reset by the host")
        guest.serial.write_log(b"\n[hvtui] reset by the host\n")
        await self._replace_machine(guest, machine_config(guest.spec))
        return guest

    async def _replace_machine(self, guest: Guest, config: MachineConfig) -> None:
        if guest.name in self._busy:
            raise StateError(f"{guest.name} is being started already")
        self._busy.add(guest.name)
        try:
            machine = await asyncio.to_thread(Machine, config, self._on_machine_event)
        finally:
            self._busy.discard(guest.name)
        old, previous = guest.machine, guest.machine.state
        await self._close_gdb(guest)          # it debugged the machine that goes
        self._unwire(guest)
        await asyncio.to_thread(old.join, 5.0)
        await asyncio.to_thread(old.destroy)
        guest.restored_from = ""
        self._new_run(guest, machine)
        machine.start()
        self._changed(guest, previous)

    # ---- snapshots ----
    async def snapshot(self, name: str, path: str | os.PathLike) -> dict:
        """Save a live guest to path (its vCPUs held meanwhile; its state untouched).
        Returns the summary of snapshot.write, with console_offset: the console bytes it had sent."""
        guest = self.get(name)
        api.check("snapshot", name, guest.state)
        return await asyncio.to_thread(guest.machine.snapshot, os.fspath(path))

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
        if name is not None:
            api.check_spec(GuestSpec("restore", name=name))
        with contextlib.ExitStack() as names:
            if name is not None:
                names.enter_context(self._claim(name))

            def build() -> Machine:
                from hvtui.vmm import snapshot     # here: a run that restores none does not load it
                with snapshot.open_snapshot(path) as snap:
                    base = snap.config["name"]
                    chosen = name or (base if base not in self.guests and base not in self._busy
                                      else self._unique_name(base))
                    return Machine.from_snapshot(snap, chosen, self._on_machine_event, **overrides)
            machine = await asyncio.to_thread(build)
            if machine.name in self.guests or (name is None and machine.name in self._busy):
                machine.destroy()
                raise ConfigError(f"a guest named {machine.name!r} already exists")
        return self._adopt(spec_of(machine.config), machine, start, restored_from=path)

    async def clone(self, path: str | os.PathLike, names: list[str], start: bool = True) -> list[Guest]:
        """Restore the same snapshot once per name: independent guests side by side."""
        return [await self.restore(path, name=n, start=start) for n in names]

    def get(self, name: str) -> Guest:
        try:
            return self.guests[name]
        except KeyError:
            raise ConfigError(f"no guest named {name!r}") from None

    async def pause(self, name: str) -> None:
        guest = self.get(name)
        api.check("pause", name, guest.state)
        await asyncio.to_thread(guest.machine.pause)

    async def resume(self, name: str) -> None:
        guest = self.get(name)
        api.check("resume", name, guest.state)
        guest.machine.resume()

    async def stop(self, name: str) -> None:
        guest = self.get(name)
        api.check("stop", name, guest.state)
        await asyncio.to_thread(guest.machine.stop)

    async def kill(self, name: str) -> None:
        guest = self.get(name)
        api.check("kill", name, guest.state)
        guest.machine.kill()
        await asyncio.to_thread(guest.machine.join, 5.0)

    async def remove(self, name: str) -> None:
        guest = self.get(name)
        api.check("remove", name, guest.state)
        if name in self._busy:
            raise StateError(f"{name} is being started; remove it afterwards")
        await asyncio.to_thread(guest.machine.join, 5.0)
        self._unwire(guest)
        task = self._input_tasks.pop(name, None)
        if task:
            task.cancel()
        await self._close_gdb(guest)
        if guest.keyboard is not None:
            guest.keyboard.close()
        guest.machine.destroy()
        for stream in guest.consoles.values():
            stream.close()
        del self.guests[name]
        self.publish(api.GuestRemoved(name))

    # ---- gdb ----
    async def serve_gdb(self, name: str, address: tuple[str, int] = ("127.0.0.1", 1234), wait: bool = False):
        """The guest's gdb server (hvtui/gdb), started on this loop if it has none yet; with
        wait, its vCPUs are held before their first instruction until a debugger lets them go."""
        from hvtui.gdb.server import GdbServer
        guest = self.get(name)
        api.check("gdb", name, guest.state)
        if guest.gdb is not None:
            return guest.gdb
        server = GdbServer(self, name, address, wait)
        await server.start()
        guest.gdb = server
        self._changed(guest, None)           # its view now names the server
        return server

    async def _close_gdb(self, guest: Guest) -> None:
        server, guest.gdb = guest.gdb, None
        if server is not None:
            await server.close()

    # ---- console ----
    def _drain(self, guest: Guest) -> None:
        guest.serial.feed(guest.machine.read_console())

    def _drain_hvc(self, guest: Guest) -> None:
        if guest.machine.board is not None:
            guest.hvc.feed(guest.machine.board.read_hvc())

    def stream(self, name: str, console: str) -> ConsoleStream:
        guest = self.get(name)
        try:
            return guest.consoles[console]
        except KeyError:
            if console == VGA:
                raise ConfigError(f"{name}'s {VGA} console is a screen, not a stream of bytes: read the screen "
                                  "and send it keys") from None
            raise ConfigError(f"{name} has no console {console!r}; it has {', '.join((*guest.consoles, VGA))}") from None

    def console_subscribe(self, name: str, callback: Callable[[bytes], None],
                          console: str = SERIAL, attach: bool = False) -> Callable[[], None]:
        """Call callback with every chunk the guest writes to console from now on. attach:
        an interactive client (the guest's vCPUs get the console's better niceness)."""
        guest = self.get(name)
        watchers = self.stream(name, console).watchers
        watchers.append(callback)
        if attach:
            guest.attached += 1
            self._set_nice(guest)

        def unsubscribe():
            if callback in watchers:
                watchers.remove(callback)
                if attach:
                    guest.attached -= 1
                    self._set_nice(guest)
        return unsubscribe

    def _set_nice(self, guest: Guest) -> None:
        """vCPU threads at vcpu_nice (console_nice while a client is attached to a console),
        so that the monitor's loop and the UIs keep answering when guests keep every core busy."""
        if self.vcpu_nice <= 0:
            return
        # without the right to lower a niceness again, every guest stays at console_nice
        background = self.vcpu_nice if can_lower_nice(self.console_nice) else self.console_nice
        nice = self.console_nice if guest.attached else background
        for t in list(guest.machine._threads):
            if t.native_id is not None and t.is_alive():
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, t.native_id, nice)

    def send_input(self, name: str, data: bytes, console: str = SERIAL) -> int:
        """Queue bytes for the guest's COM1 (they enter its 64-byte FIFO as it drains), or
        for its virtio-console. Returns how many were accepted: at most INPUT_LIMIT bytes
        wait per guest, and what does not fit is refused, never dropped silently."""
        guest = self.get(name)
        api.check("input", name, guest.state)
        self.stream(name, console)
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
        return self.get(name).input_pending()

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
        """Queue PS/2 keys (hvtui.ps2keys codes) for the guest's keyboard; StateError when
        its bounded queue has no room for all of them (none are sent then)."""
        guest = self.get(name)
        api.check("input", name, guest.state)
        guest.keyboard.send(keys)

    def vga_screen(self, name: str):
        """The guest's VGA text screen now (hvtui.textscreen.TextScreen)."""
        return self.get(name).machine.vga_screen()

    def preferred_console(self, name: str) -> str:
        return self.get(name).preferred_console()

    async def wait_for_output(self, name: str, needle: bytes, timeout: float = 10.0,
                              start: int = 0, console: str = SERIAL) -> int:
        """Wait until needle appears in the guest's console after offset start; its offset."""
        guest = self.get(name)
        deadline = self._loop.time() + timeout
        while True:
            self._drain(guest)
            self._drain_hvc(guest)
            i = self.stream(name, console).history.find(needle, start)
            if i >= 0:
                return i
            if self._loop.time() > deadline:
                raise TimeoutError(f"{name}: {needle!r} did not appear within {timeout}s")
            if not guest.state.live:
                raise StateError(f"{name} ended ({guest.machine.stop_reason}) before printing {needle!r}")
            await asyncio.sleep(0.01)

    async def wait_until_ended(self, name: str, timeout: float | None = None) -> Guest:
        guest = self.get(name)
        if not guest.ended.is_set():      # live, or ended with its end not yet handled on the loop
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
                log.exception("stats sampling failed")   # it must never take the host down

    async def sample_once(self) -> None:
        live = [g for g in self.guests.values() if g.state.live and g.machine.vm is not None]
        if not live:
            return
        for guest in live:
            self._update_rates(guest, guest.machine.sample())
        for guest in live:
            if guest.state == State.RUNNING and guest.spec.watchdog_s > 0:
                await asyncio.to_thread(guest.machine.check_runaway)
        if self._subscribers:
            self.publish(api.StatsTick(tuple(g.view() for g in live if g.name in self.guests)))

    def _update_rates(self, guest: Guest, sample: MachineSample) -> None:
        prev = guest.last_sample
        guest.last_sample = sample
        guest.resident_bytes = sample.resident_bytes
        guest.unowned_accesses = sample.unowned
        for v in sample.vcpus:
            if prev is None or v.total_exits != prev.vcpus[v.index].total_exits:
                guest.last_exit_at[v.index] = sample.time
                guest.cpu_at_last_exit[v.index] = v.cpu_s
        if prev is None:
            return
        dt = max(sample.time - prev.time, 1e-6)
        for v, p in zip(sample.vcpus, prev.vcpus):
            rates = guest.vcpu_rates[v.index]
            rates.by_reason = {k: (n - p.exits.get(k, 0)) / dt for k, n in v.exits.items()
                               if n - p.exits.get(k, 0) > 0}
            rates.exits_per_s = (v.total_exits - p.total_exits) / dt
            rates.run_share = min(1.0, (v.ns_in_run - p.ns_in_run) / 1e9 / dt)
            if v.cpu_s is not None:       # its thread's CPU time since the last sample
                before = p.cpu_s if p.cpu_s is not None else v.cpu_s
                rates.cpu_percent = max(0.0, (v.cpu_s - before) / dt * 100)
        guest.exits_history.append(guest.exits_per_s)
        guest.silent_s = max((busy_silence_s(guest, v, sample.time) for v in sample.vcpus),
                             default=0.0) if guest.state == State.RUNNING else 0.0

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
            try:
                await self.remove(name)
            except HvError:
                log.exception("removing %s at shutdown", name)


def busy_silence_s(guest: Guest, v, now: float) -> float:
    """How long vCPU v has been computing without an exit: the time since its exit count
    last moved, if its thread used at least BUSY_CPU_PERCENT of a host CPU over all that
    time (a vCPU waiting idle uses next to none); else 0. The share is taken over the
    whole silence, not the last sampling interval: beside other busy threads on 2 cores a
    computing vCPU got 28-79% of one from one 0.2 s interval to the next (45% overall),
    and an interval cut short by an extra sample holds too few clock ticks to tell."""
    since = now - guest.last_exit_at.get(v.index, now)
    cpu_then, cpu_now = guest.cpu_at_last_exit.get(v.index), v.cpu_s
    if since <= 0 or cpu_then is None or cpu_now is None:
        return 0.0
    return since if (cpu_now - cpu_then) / since * 100 >= BUSY_CPU_PERCENT else 0.0


def can_lower_nice(target: int) -> bool:
    """Whether a thread's niceness can go back down to target (root, or RLIMIT_NICE)."""
    import resource
    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    return os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20 - target
