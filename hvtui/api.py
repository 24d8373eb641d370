"""The one door between the monitor and its clients (the TUI, the CLI, the socket).

What a client may know: a guest's spec (GuestSpec, with a Boot for the boot protocols), a
frozen view of a guest (GuestView: name, state and how it ended, spec, rates, crash report,
its consoles by name), typed events, the lifecycle table from which every client derives
what is allowed, and the commands (the Monitor interface). The Host implements Monitor in
process; hvtui.client implements it over the daemon's socket. Everything here is plain data
that round-trips through JSON (to_wire / from_wire), so the two are interchangeable.

This module imports nothing of the monitor (no host, no vmm, no _core): a client that
attaches to a daemon never loads KVM code. The monitor's own modules import it.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from hvtui.errors import ConfigError, HvError, StateError
from hvtui.states import State
from hvtui.textscreen import Cursor, TextScreen

__all__ = ["Boot", "GuestSpec", "State", "End", "Crash", "VcpuRates", "GuestView", "Event",
           "GuestAdded", "GuestChanged", "GuestRemoved", "StatsTick", "Resync", "Notice", "DebuggerEvent", "Gone",
           "ACTIONS",
           "LIFECYCLE", "allowed", "check", "Monitor", "SERIAL", "HVC", "CONSOLES", "HvError",
           "StateError", "ConfigError", "RemoteError", "spec_from_wire", "view_from_wire",
           "event_from_wire"]

SERIAL, HVC = "serial", "hvc0"      # every guest's byte consoles: COM1 and its virtio-console
VGA = "vga"                         # ... and its screen: VGA text mode, with the PS/2 keyboard
CONSOLES = (SERIAL, HVC, VGA)
STREAMS = (SERIAL, HVC)             # the consoles that are byte streams (watch_console, send_input)
EXIT_CODE_STYLES = ("hvtui", "qemu")


class RemoteError(HvError):
    """The monitor answered a request with an error of a kind this client does not know."""


# ---- what a guest is made of ----
@dataclass(frozen=True)
class Boot:
    """How the kernel is booted, for every protocol vmm/boot knows."""
    cmdline: str | None = None            # the kernel's command line; None: the image's default
    initrd: tuple[str, ...] = ()          # Linux initrd files / Multiboot modules ("FILE ARGS")
    exit_code: str = "hvtui"              # "qemu": a debug-exit write of v means (v << 1) | 1

    def __post_init__(self):
        object.__setattr__(self, "initrd", tuple(self.initrd))


def split_initrd(text: str | None) -> list[str]:
    """QEMU's -initrd list: files separated by commas, each optionally followed by its
    arguments ("FILE ARGS"); the form the CLI, the fleet file and the TUI all take."""
    return [item.strip() for item in text.split(",") if item.strip()] if text else []


@dataclass(frozen=True)
class GuestSpec:
    """Everything needed to boot a guest (again): one record, used by every client."""
    image: str                            # built-in name or path to a kernel
    name: str = ""                        # "" : the monitor picks IMAGE-N
    memory_mib: int = 64
    vcpus: int = 1
    boot: Boot = Boot()
    watchdog_s: float = 0.0               # 0: never crash a vCPU silent with interrupts off
    disk: str | None = None               # host file behind virtio-blk and the ATA disk
    disk_readonly: bool = False
    overcommit: bool = False              # start it even if the host cannot promise its RAM


# ---- the lifecycle: one table ----
# (state, action) -> the state the action leads to. What is not here is not allowed.
LIFECYCLE: dict[tuple[State, str], State | None] = {
    (State.CREATED, "start"): State.RUNNING,
    (State.CREATED, "stop"): State.STOPPED,
    (State.CREATED, "kill"): State.STOPPED,
    (State.CREATED, "snapshot"): State.CREATED,
    (State.CREATED, "input"): State.CREATED,
    (State.CREATED, "gdb"): State.CREATED,
    (State.RUNNING, "pause"): State.PAUSED,
    (State.RUNNING, "stop"): State.STOPPED,
    (State.RUNNING, "kill"): State.STOPPED,
    (State.RUNNING, "reset"): State.RUNNING,
    (State.RUNNING, "snapshot"): State.RUNNING,
    (State.RUNNING, "clone"): State.RUNNING,
    (State.RUNNING, "input"): State.RUNNING,
    (State.RUNNING, "gdb"): State.RUNNING,
    (State.PAUSED, "resume"): State.RUNNING,
    (State.PAUSED, "stop"): State.STOPPED,
    (State.PAUSED, "kill"): State.STOPPED,
    (State.PAUSED, "reset"): State.RUNNING,
    (State.PAUSED, "snapshot"): State.PAUSED,
    (State.PAUSED, "clone"): State.PAUSED,
    (State.PAUSED, "input"): State.PAUSED,
    (State.PAUSED, "gdb"): State.PAUSED,
    (State.STOPPED, "start"): State.RUNNING,     # again, from its spec: a new run
    (State.STOPPED, "remove"): None,
    (State.CRASHED, "start"): State.RUNNING,
    (State.CRASHED, "remove"): None,
}
ACTIONS = tuple(dict.fromkeys(a for _, a in LIFECYCLE))
VERBS = {"start": "started", "stop": "stopped", "kill": "killed", "pause": "paused",
         "resume": "resumed", "reset": "reset", "remove": "removed", "snapshot": "snapshotted",
         "clone": "cloned", "input": "given input", "gdb": "debugged"}


def allowed(action: str, state: State) -> bool:
    """Whether action is allowed on a guest in state (the table above)."""
    return (State(state), action) in LIFECYCLE


def allowed_in(action: str) -> frozenset[State]:
    return frozenset(s for (s, a) in LIFECYCLE if a == action)


def check(action: str, name: str, state: State) -> None:
    """StateError naming the guest, its state and the states that allow action."""
    if not allowed(action, state):
        states = [s.value for s in State if s in allowed_in(action)]
        where = " or ".join([", ".join(states[:-1]), states[-1]] if len(states) > 1 else states) or "nothing"
        if action == "input":
            raise StateError(f"{name} is {State(state).value}; it takes no input")
        raise StateError(f"{name} is {State(state).value}; only a guest that is {where} can be "
                         f"{VERBS.get(action, action)}")


# ---- what a client sees of a guest ----
@dataclass(frozen=True)
class End:
    """How a guest's last run ended."""
    kind: str                         # "exited", "crashed", "stopped", "killed"
    reason: str = ""                  # the monitor's words: "debug exit", "ACPI poweroff", ...
    exit_code: int | None = None      # the value written to the debug-exit port
    exit_status: int | None = None    # what `hvtui run` exits with (by the guest's convention)

    def text(self) -> str:
        if self.kind == "exited":
            return f"exited {self.exit_status}"
        if self.kind == "crashed":
            return f"crashed: {self.reason}"
        return self.kind


@dataclass(frozen=True)
class Crash:
    reason: str
    detail: str = ""
    vcpu: int = 0
    registers: dict[str, int] = field(default_factory=dict)
    instruction: str = ""             # hex bytes at RIP
    summary: str = ""                 # one line
    report: str = ""                  # the full report with the register dump


@dataclass(frozen=True)
class VcpuRates:
    exits_per_s: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)
    cpu_percent: float = 0.0
    run_share: float = 0.0            # fraction of wall time inside KVM_RUN


@dataclass(frozen=True)
class GuestView:
    """A guest as it is at one moment. Never changes; a new one comes with each event."""
    name: str
    state: State
    spec: GuestSpec
    end: End | None = None            # set once a run ended (stopped, crashed)
    crash: Crash | None = None
    run: int = 1                      # runs of this name so far (start again, reset: +1)
    boot_protocol: str = ""
    consoles: tuple[str, ...] = CONSOLES
    preferred_console: str = SERIAL   # where it talks: VGA for a guest that only drew on its screen
    input_pending: int = 0            # COM1 input it has not read yet (queued, and in its FIFO)
    console_bytes: dict[str, int] = field(default_factory=dict)
    log: str = ""                     # this run's serial console log file
    uptime_s: float = 0.0
    exits_per_s: float = 0.0
    exits_history: tuple[float, ...] = ()
    by_reason: dict[str, float] = field(default_factory=dict)
    cpu_percent: float = 0.0
    vcpu_rates: tuple[VcpuRates, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()    # busiest I/O ports: (port, exits so far)
    resident_bytes: int = 0
    silent_s: float = 0.0             # longest a busy vCPU has gone without an exit
    unowned_accesses: int = 0
    registers: tuple[Any, ...] = ()   # per vCPU: a register dict, or a word saying why not
    threads: tuple[int, ...] = ()     # native ids of the vCPU threads (for top -H, nice)
    restored_from: str = ""
    gdb: str = ""                     # its gdb server's `target remote HOST:PORT` line, if it has one
    gdb_client: str = ""              # the debugger attached to it (its address), if one is
    debug_stopped: bool = False       # a debugger holds it (a breakpoint, a step, an interrupt)
    debug_stop: str = ""              # what stopped it: "vCPU 0: breakpoint at 0x1010a0"

    @property
    def status(self) -> str:
        """The state as the table shows it: running, paused, debug (stopped by the
        debugger), exited 3, crashed: reason, stopped, killed."""
        if self.state.live and self.debug_stopped:
            return "debug"
        if self.state.live or self.end is None:
            return self.state.value
        return self.end.text()

    def top_exit_reason(self) -> str:
        return max(self.by_reason, key=self.by_reason.get) if self.by_reason else "-"

    def can(self, action: str) -> bool:
        return allowed(action, self.state)


# ---- events ----
@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = ""


@dataclass(frozen=True)
class GuestAdded(Event):
    guest: GuestView
    kind: ClassVar[str] = "added"


@dataclass(frozen=True)
class GuestChanged(Event):
    """A lifecycle transition (or a new run); previous is the state before it."""
    guest: GuestView
    previous: State | None = None
    kind: ClassVar[str] = "changed"


@dataclass(frozen=True)
class GuestRemoved(Event):
    name: str
    kind: ClassVar[str] = "removed"


@dataclass(frozen=True)
class StatsTick(Event):
    """Fresh rates of every live guest (coalesces: only the newest one matters)."""
    guests: tuple[GuestView, ...]
    kind: ClassVar[str] = "stats"


@dataclass(frozen=True)
class Resync(Event):
    """The client fell behind and events were dropped; guests is the whole truth now.
    Console streams may have lost bytes: re-read the history to redraw."""
    guests: tuple[GuestView, ...]
    dropped: int = 0
    kind: ClassVar[str] = "resync"


@dataclass(frozen=True)
class Notice(Event):
    """Something a user should read (a monitor-side error in a background task)."""
    text: str
    severity: str = "information"
    kind: ClassVar[str] = "notice"


@dataclass(frozen=True)
class DebuggerEvent(Event):
    """What a guest's gdb server saw: a debugger "attached" or "detached" (detail: who),
    "stopped" the guest (detail: why) or let it be "running", or was "refused" something
    it asked (detail: why; gdb itself shows no reason for a refused breakpoint)."""
    guest: GuestView
    what: str
    detail: str = ""
    kind: ClassVar[str] = "debugger"


@dataclass(frozen=True)
class Gone(Event):
    """The monitor went away (kill-server, a crash of the daemon): nothing more will come."""
    reason: str
    kind: ClassVar[str] = "gone"


EVENT_TYPES = {t.kind: t for t in (GuestAdded, GuestChanged, GuestRemoved, StatsTick, Resync, Notice,
                                   DebuggerEvent, Gone)}


# ---- the commands ----
class Monitor:
    """What a client can ask of the monitor. Views and subscriptions are synchronous
    (a remote client keeps a mirror fed by events); everything that acts is a coroutine
    that raises HvError (StateError, ConfigError, ...) with one line saying why."""

    embedded: bool = True                # False: a daemon that outlives this client
    log_file: str = ""                   # the monitor's own log (errors with tracebacks)

    # -- what there is
    def guests(self) -> list[GuestView]:
        raise NotImplementedError

    def guest(self, name: str) -> GuestView | None:
        raise NotImplementedError

    def view(self, name: str) -> GuestView:
        g = self.guest(name)
        if g is None:
            raise ConfigError(f"no guest named {name!r}")
        return g

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        raise NotImplementedError

    # -- lifecycle
    async def create(self, spec: GuestSpec, start: bool = True) -> GuestView:
        raise NotImplementedError

    async def start(self, name: str) -> GuestView:
        raise NotImplementedError

    async def pause(self, name: str) -> None:
        raise NotImplementedError

    async def resume(self, name: str) -> None:
        raise NotImplementedError

    async def stop(self, name: str) -> None:
        raise NotImplementedError

    async def kill(self, name: str) -> None:
        raise NotImplementedError

    async def reset(self, name: str) -> None:
        raise NotImplementedError

    async def remove(self, name: str) -> None:
        raise NotImplementedError

    # -- snapshots
    async def snapshot(self, name: str, path: str) -> dict:
        raise NotImplementedError

    async def restore(self, path: str, name: str | None = None, start: bool = True, disk: str | None = None,
                      disk_readonly: bool = False, overcommit: bool = False) -> GuestView:
        """A new guest continuing the snapshot at path. disk: the disk file to give it instead
        of the one the snapshot names (reopened as it was: read-write unless read-only);
        overcommit: even if the host cannot promise its RAM."""
        raise NotImplementedError

    async def clone(self, name: str, new_names: list[str], path: str | None = None) -> list[GuestView]:
        """A live snapshot of name (to path, or a file in the snapshot folder), restored once
        per new name. A clone keeps its disk, read-only: one guest writes a disk file."""
        raise NotImplementedError

    # -- consoles
    def watch_console(self, name: str, console: str, callback: Callable[[bytes], None],
                      replay: int = 0, attach: bool = False) -> Callable[[], None]:
        """callback(bytes) with the console's last `replay` bytes, then everything the guest
        writes to it, in order, without a gap or a repeat. attach: an interactive client
        (a console screen; the guest's vCPUs get the console's niceness). The unsubscriber."""
        raise NotImplementedError

    async def console_history(self, name: str, console: str = SERIAL, max_bytes: int = 1 << 20) -> bytes:
        raise NotImplementedError

    async def send_input(self, name: str, data: bytes, console: str = SERIAL) -> int:
        """Queue bytes for the console; how many were accepted (the rest: the queue is full)."""
        raise NotImplementedError

    async def read_log(self, name: str, offset: int = 0, limit: int = 1 << 20, console: str = SERIAL,
                       run: int | None = None) -> bytes:
        """Bytes of a run's console log file (default: the current run's) from offset."""
        raise NotImplementedError

    # -- the VGA screen and the PS/2 keyboard
    async def screen(self, name: str, console: str = VGA) -> TextScreen:
        """The guest's VGA text screen as it is now (hvtui.textscreen.TextScreen)."""
        raise NotImplementedError

    async def send_keys(self, name: str, keys: list[int]) -> int:
        """PS/2 keys (hvtui.ps2keys codes) for the guest's keyboard: all of them, or a
        StateError when its bounded queue has no room for them all (then none are sent)."""
        raise NotImplementedError

    # -- the debugger
    async def gdb(self, name: str, address: str | None = None, wait: bool = False) -> str:
        """Serve the GDB remote protocol for the guest on [HOST:]PORT (None: 127.0.0.1, the
        first free port from 1234); wait: hold it before its first instruction until gdb
        lets it go. Its `target remote` line (the same server again when it has one)."""
        raise NotImplementedError

    async def report(self, text: str) -> None:
        """Put a client's error (with its traceback) in the monitor's log."""
        raise NotImplementedError

    # -- the monitor itself
    async def open(self) -> None:
        """Get ready (on the running loop) before anything else is asked."""

    async def shutdown(self) -> None:
        """Stop the monitor and every guest (kill-server)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Let go of the monitor: a daemon goes on; an embedded one ends with its guests."""
        raise NotImplementedError


# ---- JSON ----
def to_wire(value: Any) -> Any:
    """A dataclass, enum, tuple ... as JSON-able data (events carry their kind)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Event):
            out["kind"] = value.kind
        return out
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _fields(cls) -> tuple[dict, frozenset]:
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def _from(cls, data: Any, where: str):
    """data (from JSON) as an instance of the dataclass cls, checked field by field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints, names = _fields(cls)
    tag = {"kind"} if issubclass(cls, Event) else set()      # an event's kind names its class
    unknown = set(data) - names - tag
    if unknown:
        raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    kwargs = {k: _value(hints[k], v, f"{where}.{k}") for k, v in data.items() if k not in tag}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def _value(hint, v, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return v
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _value(a, v, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: unexpected {type(v).__name__}")
    if dataclasses.is_dataclass(hint):
        return _from(hint, v, where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(v)
        except ValueError:
            raise ConfigError(f"{where}: not a {hint.__name__}: {v!r}") from None
    if origin is tuple:
        if not isinstance(v, list):
            raise ConfigError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], x, where) for x in v)
        if len(args) != len(v):
            raise ConfigError(f"{where}: expected {len(args)} items")
        return tuple(_value(a, x, where) for a, x in zip(args, v))
    if origin is dict:
        if not isinstance(v, dict):
            raise ConfigError(f"{where}: expected an object")
        return {k: _value(args[1], x, where) for k, x in v.items()}
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: expected a number")
        return float(v)
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected a whole number")
        return v
    if hint in (str, bool):
        if not isinstance(v, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}")
        return v
    return v


def screen_to_wire(screen: TextScreen) -> dict:
    import base64
    c = screen.cursor
    return {"cells": base64.b64encode(screen.cells).decode("ascii"),
            "cursor": None if c is None else [c.x, c.y, c.start, c.end, c.height],
            "palette": [list(rgb) for rgb in screen.palette], "blink": screen.blink, "enabled": screen.enabled}


def screen_from_wire(data: Any) -> TextScreen:
    import base64
    import binascii
    try:
        cursor = data["cursor"]
        return TextScreen(cells=base64.b64decode(data["cells"], validate=True),
                          cursor=None if cursor is None else Cursor(*(int(v) for v in cursor)),
                          palette=tuple(tuple(int(v) for v in rgb) for rgb in data["palette"]),
                          blink=bool(data["blink"]), enabled=bool(data["enabled"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise ConfigError(f"screen: {e}") from None


def spec_from_wire(data: Any) -> GuestSpec:
    return _from(GuestSpec, data, "spec")


def view_from_wire(data: Any) -> GuestView:
    return _from(GuestView, data, "guest")


def event_from_wire(data: Any) -> Event:
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in EVENT_TYPES:
        raise ConfigError(f"unknown event {kind!r}")
    return _from(EVENT_TYPES[kind], data, kind)


def check_spec(spec: GuestSpec) -> GuestSpec:
    """Refuse what no machine could be (the monitor checks the rest against the host)."""
    if spec.boot.exit_code not in EXIT_CODE_STYLES:
        raise ConfigError(f"exit code style {spec.boot.exit_code!r}: one of {', '.join(EXIT_CODE_STYLES)}")
    if spec.name and (any(c in spec.name for c in "/\0") or len(spec.name) > 64 or spec.name.startswith(".")):
        raise ConfigError(f"invalid guest name {spec.name!r}: 1-64 characters, no '/', not starting with '.'")
    if spec.watchdog_s < 0:
        raise ConfigError("the watchdog takes a number of seconds >= 0")
    return spec


def absolute_spec(spec: GuestSpec) -> GuestSpec:
    """A spec whose files are absolute paths (a daemon does not share the client's cwd)."""
    def fix(p: str) -> str:
        return os.path.abspath(os.path.expanduser(p))

    from hvtui import images
    image = spec.image
    if image not in images.BUILTINS and (os.sep in image or os.path.exists(image)):
        image = fix(image)
    initrd = tuple(fix(x.split(" ", 1)[0]) + (" " + x.split(" ", 1)[1] if " " in x else "")
                   for x in spec.boot.initrd)
    return dataclasses.replace(spec, image=image, boot=dataclasses.replace(spec.boot, initrd=initrd),
                               disk=fix(spec.disk) if spec.disk else None)


# ---- opening a monitor ----
def embedded(log_dir=None, sample_interval: float = 0.5, vcpu_nice: int = 0, console_nice: int = 0,
             spare_vm: bool = True, log_max_bytes: int | None = None, log_keep: int | None = None) -> Monitor:
    """A monitor of this process's own (a Host), for `hvtui --embedded`, `hvtui run`, tests
    and screenshots: its guests end when it is closed. KvmUnavailable when /dev/kvm is not
    usable. spare_vm False: no warmed VM kept for a next guest (a one-shot run)."""
    from hvtui.host import Host
    from hvtui.monitor import HostMonitor
    from hvtui.vmm.kvm import Kvm
    Kvm.get()
    from hvtui import logs
    return HostMonitor(Host(log_dir=log_dir, sample_interval=sample_interval, vcpu_nice=vcpu_nice,
                            console_nice=console_nice, spare_vm=spare_vm,
                            log_max_bytes=logs.DEFAULT_MAX_BYTES if log_max_bytes is None else log_max_bytes,
                            log_keep=logs.DEFAULT_KEEP if log_keep is None else log_keep))


def prepare_vm() -> None:
    """For a one-shot run about to open embedded(spare_vm=False): start making its VM now,
    on a thread, so that KVM's part of it (7-10 ms on KVM-PVM, mostly in the kernel with
    the GIL released) overlaps the loading of the monitor's code. Nothing is said when it
    fails: the run then makes its VM itself and reports what goes wrong."""
    import threading

    def work():
        try:
            from hvtui.vmm.kvm import Kvm, VmPool
            VmPool.for_kvm(Kvm.get()).prefetch()
        except Exception:
            pass
    threading.Thread(target=work, name="hvtui-vm-prefetch", daemon=True).start()


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """[HOST:]PORT (an IPv6 host in brackets) as (host, port); ValueError says what is wrong."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected [HOST:]PORT with a port from 0 to 65535")
    return host, int(port)


def is_snapshot(path: str) -> bool:
    """Whether path is an hvtui snapshot file (by its magic), rather than a kernel. The
    magic is in vmm/files.py, not read from vmm/snapshot.py: that module (json, hashlib, its
    schema) costs 3-4 ms to load, and a run of a kernel asks this first."""
    import stat

    from hvtui.vmm.files import SNAPSHOT_MAGIC as MAGIC
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):    # a FIFO would block the open
            return False
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def snapshot_info(path: str, pages: bool = False) -> dict:
    """Verify a snapshot file (checksums, this host's CPU; with pages, every memory page
    too, as `hvtui snapshot info` does: a restore checks each page when it is first used)
    and say what it holds."""
    from hvtui.vmm import snapshot
    from hvtui.vmm.kvm import Kvm
    return snapshot.verify(path, Kvm.get(), pages=pages)


def log_to_file(log_dir=None):
    """Send the monitor's "hvtui" log (errors with tracebacks) to LOG_DIR/hvtui.log
    ($XDG_STATE_HOME/hvtui/logs unless log_dir): once per process and folder. The handler,
    or None when the file cannot be opened."""
    import logging.handlers
    from pathlib import Path

    from hvtui import logs, paths
    folder = Path(log_dir or paths.log_dir()).absolute()
    for h in logs.log.handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename).parent == folder:
            return h
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return logs.open_monitor_log(folder)


def serve(detach: bool = False, quiet: bool = False, vcpu_nice: int = 19, console_nice: int = 10,
          log_max_bytes: int | None = None, log_keep: int | None = None) -> int:
    """Be the user's monitor (`hvtui serve`) until kill-server or a signal; exit status."""
    from hvtui import logs
    from hvtui.server import main
    return main(detach=detach, quiet=quiet, vcpu_nice=vcpu_nice, console_nice=console_nice,
                log_max_bytes=logs.DEFAULT_MAX_BYTES if log_max_bytes is None else log_max_bytes,
                log_keep=logs.DEFAULT_KEEP if log_keep is None else log_keep)
