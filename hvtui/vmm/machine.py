"""Machine = one VM + its vCPU threads + its devices: lifecycle, crash containment, stats.

Threads: one per vCPU, each looping in C (hv_vcpu_run, GIL released) and coming back to
Python only for a Python device, a host request or an end. The lifecycle of DESIGN §4:
created -> running <-> paused -> stopped, and crashed from any live state. A pause is
acknowledged by every vCPU (they park on a condition), never assumed. Two things park the
vCPUs: the user's pause (a state, published) and quiesced(), the monitor's own counted
request (snapshots, the watchdog), which never changes the state nor makes an event; the
vCPUs run only when neither holds. Transitions are reported through
on_event(machine, event, info) from whichever thread made them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from dataclasses import dataclass, field

from hvtui._core import ffi, lib
from hvtui.errors import ConfigError, DeviceError, GuestMemoryError, HvError, ImageError, SnapshotError, StateError
from hvtui.states import State
from hvtui.vmm import admission, boot, cpu, firmware, layout, lazyram
from hvtui.vmm.boot import pc
from hvtui.vmm.board import Board
from hvtui.vmm.devices.bus import Bus
from hvtui.vmm.exits import CrashReport, INTERNAL_SUBERRORS, emulation_bytes, exit_name, register_dump
from hvtui.vmm.kvm import Kvm, Vcpu, VmPool, check
from hvtui.vmm.memory import GuestMemory

MIN_MEMORY_MIB = 2
_IO_WORD = {1: "uint8_t *", 2: "uint16_t *", 4: "uint32_t *"}   # a port access's value, by size
_IO_OUT, _EXIT_IO = lib.HV_IO_OUT, lib.HV_EXIT_IO   # the exit path compares with these on every exit
RFLAGS_IF = 1 << 9


@dataclass
class MachineConfig:
    name: str
    image: str                      # path of a kernel: any format vmm/boot/ knows
    memory_mib: int = 64
    vcpus: int = 1
    cmdline: str = ""
    watchdog_s: float = 0.0         # crash a vCPU silent this long with interrupts off; 0: never
    initrd: list[str] = field(default_factory=list)   # "FILE" or "FILE ARGS": initrd / Multiboot modules
    exit_code_style: str = "hvtui"  # "qemu": a debug-exit write of v means status (v << 1) | 1
    disk: str | None = None         # host file behind virtio-blk and the emulated ATA disk
    disk_readonly: bool = False
    overcommit: bool = False        # admit its RAM even when the host cannot promise it (admission.py)


@dataclass
class VcpuSample:
    index: int
    exits: dict[str, int]
    ports: dict[int, int]
    ns_in_run: int
    ns_in_monitor: int
    python_exits: int
    kicks: int
    thread_id: int
    total_exits: int
    cpu_s: float | None = None      # CPU time of its thread so far (None: not running)


@dataclass
class MachineSample:
    time: float
    vcpus: list[VcpuSample]
    ram_bytes: int
    resident_bytes: int
    uart: dict = field(default_factory=dict)
    unowned: int = 0            # port and MMIO accesses no device owns


class _GuestFault(Exception):
    """Raised on a vCPU thread for something the guest did that ends it."""

    def __init__(self, reason: str, detail: str = "", instruction: bytes = b""):
        super().__init__(reason)
        self.reason, self.detail, self.instruction = reason, detail, instruction


def validate(config: MachineConfig, kvm: Kvm) -> None:
    """Refuse a configuration the host cannot honour, before anything is created."""
    if not config.name or any(c in config.name for c in "/\0") or len(config.name) > 64:
        raise ConfigError(f"invalid guest name {config.name!r}: 1-64 characters, no '/'")
    if config.memory_mib < MIN_MEMORY_MIB:
        raise ConfigError(f"memory must be at least {MIN_MEMORY_MIB} MiB (got {config.memory_mib})")
    if layout.mapped_gib(config.memory_mib << 20) > layout.MAX_MAPPED_GIB:
        raise ConfigError(f"memory above {layout.MAX_MAPPED_GIB - 2} GiB is not supported")
    limit = min(kvm.max_vcpus, layout.MAX_VCPUS_LAYOUT, firmware.MAX_VCPUS)
    if not 1 <= config.vcpus <= limit:
        raise ConfigError(f"vCPUs must be between 1 and {limit} (KVM allows {kvm.max_vcpus}, a PC's APIC IDs "
                          f"{firmware.MAX_VCPUS}), got {config.vcpus}")
    if len(config.cmdline.encode()) > layout.CMDLINE_MAX:
        raise ConfigError(f"command line longer than {layout.CMDLINE_MAX} bytes")
    if config.exit_code_style not in EXIT_CODE_STYLES:
        raise ConfigError(f"exit code style {config.exit_code_style!r}: one of {', '.join(EXIT_CODE_STYLES)}")


EXIT_CODE_STYLES = ("hvtui", "qemu")


def open_modules(specs: list[str], ram: int | None = None) -> list[boot.Module]:
    """Each "FILE" or "FILE ARGS" opened (boot.Module: loading copies it from the file into
    guest RAM); the module's string is the spec as given. Their sizes are checked first:
    together they must fit in ram (none is opened otherwise). The caller closes them."""
    paths = []
    for spec in specs:
        path = spec.strip().split(" ", 1)[0]
        if not path:
            raise ImageError("an empty --initrd/module entry")
        paths.append(path)
    total = sum(boot.file_size(p, "module or initrd") for p in paths)
    if ram is not None and total > ram:
        raise ImageError(f"{', '.join(paths)}: the initrd/modules take {total >> 20} MiB, which does not fit in "
                         f"guest RAM ({ram >> 20} MiB)")
    modules: list[boot.Module] = []
    try:
        for p, spec in zip(paths, specs):
            modules.append(boot.Module(p, spec.strip()))
    except BaseException:
        for m in modules:
            m.close()
        raise
    return modules


class Machine:
    def __init__(self, config: MachineConfig, on_event=None, kvm: Kvm | None = None,
                 snapshot: snapshot.Snapshot | None = None):
        """A new machine from config, or (snapshot given, already verified) one that
        continues where the snapshot was taken; either way it starts `created`."""
        self.config = config
        self.name = config.name
        self.on_event = on_event or (lambda machine, event, info: None)
        self.kvm = kvm or Kvm.get()
        validate(config, self.kvm)
        admission.admit(id(self), config.name, config.memory_mib << 20,
                        lambda: self.vm.resident_bytes() if self.vm is not None else 0, config.overcommit)
        self.state = State.CREATED
        self.exit_code: int | None = None
        self.stop_reason = ""
        self.crash: CrashReport | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._cond = threading.Condition()
        self._stopping = False       # the vCPUs must leave
        self._user_paused = False    # the user's pause (state PAUSED)
        self._quiesce = 0            # the monitor's own requests to hold the vCPUs (not a state)
        self.holds = 0               # how many times the monitor held them (snapshots, watchdog looks)
        self._parked: set[int] = set()
        self._held: set[int] = set()     # vCPUs a debugger holds (vmm/debug.py): parked apart from the user's pause
        self.debug = None                # the attached debugger's GuestDebug (vmm/debug.py), or None
        self._threads: list[threading.Thread] = []
        self._silent_since: dict[int, tuple[int, float]] = {}
        self._tables: dict[int, tuple] = {}   # vCPU -> (exits, its exits by reason, by port) at the last sample
        self.ports = Bus("port", by_address=True)
        self.mmio = Bus("mmio")
        self.board: Board | None = None     # the devices Python serves (board.py)
        self.boot_protocol = "restored"       # how it was booted (vmm/boot), for display
        self.unowned_mmio = 0                 # MMIO accesses nobody owns (ports: the C core counts)
        self.vm = None
        self.vcpus: list[Vcpu] = []
        self.memory = GuestMemory()
        self._ram_hint: dict = {}        # slot -> runs of pages a restored RAM reads from its file
        self.lazy: lazyram.LazyRam | None = None   # a restored RAM served from its file (vmm/lazyram.py)
        self._control = threading.Lock()    # held through a snapshot, or a runaway check
        try:
            self._build() if snapshot is None else self._restore(snapshot)
        except BaseException:
            self.destroy()
            raise

    # ---- construction ----
    def _build(self) -> None:
        """A new machine: the kernel is read and recognised, and its modules opened,
        before anything is created; the protocol checks the rest before it writes guest RAM."""
        cfg = self.config
        image = boot.read_file(cfg.image)
        protocol = boot.detect(cfg.image, image)
        modules = open_modules(cfg.initrd, cfg.memory_mib << 20)
        try:
            self._build_with(image, protocol, modules)
        finally:
            for m in modules:
                m.close()

    def _build_with(self, image: bytes, protocol, modules: list[boot.Module]) -> None:
        cfg = self.config
        ram = cfg.memory_mib << 20
        low, high = layout.split_ram(ram)
        self.vm = VmPool.for_kvm(self.kvm).take()
        if protocol.PC:
            self.vm.create_pit()
        self.memory.add(0, low, self.vm.map_ram(0, 0, low))
        if high:
            self.memory.add(layout.HIGH_RAM_START, high, self.vm.map_ram(1, layout.HIGH_RAM_START, high))
        self._add_devices()
        self._add_vcpus()
        if protocol.PC:
            pc.write_firmware(self.memory, cfg.vcpus)
        loaded = protocol.load(boot.BootContext(
            kernel_path=cfg.image, image=image, cmdline=cfg.cmdline, modules=modules, memory=self.memory,
            ram_size=ram, low_end=low, high_size=high, vcpus=cfg.vcpus, tsc_khz=self.vcpus[0].tsc_khz(),
            virtio=self.board.virtio_devices()))
        self.boot_protocol = loaded.protocol
        for vcpu, entry in zip(self.vcpus, loaded.entries):
            if entry.mode == "long64":
                cpu.enter_long_mode(vcpu, entry.rip, entry.regs, pc.GDT_LONG if loaded.pc else cpu.TINY_GDT)
            else:
                cpu.enter_protected_mode(vcpu, entry.rip, entry.regs, pc.GDT_PROTECTED)
            if vcpu.index > 0:   # entered by the monitor: not waiting for INIT/SIPI
                vcpu.set_mp_state(lib.KVM_MP_STATE_RUNNABLE)
        if loaded.pc:
            for vcpu in self.vcpus:
                cpu.set_virtual_wire(vcpu)

    def _add_vcpus(self) -> None:
        supported = self.kvm.supported_cpuid()
        for i in range(self.config.vcpus):
            vcpu = Vcpu(self.vm, i)
            self.vcpus.append(vcpu)
            vcpu.set_cpuid(cpu.guest_cpuid(supported, i, self.config.vcpus))

    def _add_devices(self) -> None:
        """The Python devices of every machine, built or restored (restore_state then
        gives each its saved state)."""
        cfg = self.config
        ram = cfg.memory_mib << 20
        self.board = Board(self.vm, self.memory, self.add_port_device, self.add_mmio_device,
                           (ram, *layout.split_ram(ram)), cfg.vcpus, self._power_event,
                           cfg.disk, cfg.disk_readonly)

    def _power_event(self, reason: str) -> None:
        """The guest powered off or reset its machine (ACPI, the reset register): it ends."""
        self._end(State.STOPPED, stop_reason=reason)

    @property
    def scratch(self):
        return self.board.scratch

    def add_port_device(self, base: int, size: int, device) -> None:
        self.ports.add(base, size, device)
        self.vm.claim_ports(base, size)

    def add_mmio_device(self, base: int, size: int, device) -> None:
        self.mmio.add(base, size, device)

    # ---- lifecycle ----
    def _emit(self, event: str, **info) -> None:
        try:
            self.on_event(self, event, info)
        except Exception:   # a subscriber's bug must not take a vCPU thread down
            pass

    def _set_state(self, state: State, **info) -> None:
        self.state = state
        self._emit("state", state=state, **info)

    def start(self) -> None:
        with self._cond:
            if self.state != State.CREATED:
                raise StateError(f"{self.name} is {self.state.value}; only a created guest starts")
            self.started_at = time.monotonic()
            for vcpu in self.vcpus:
                t = threading.Thread(target=self._vcpu_main, args=(vcpu,),
                                     name=f"{self.name}/vcpu{vcpu.index}", daemon=True)
                self._threads.append(t)
            self.state = State.RUNNING
        if self.board is not None:
            self.board.start(self.name)
        for t in self._threads:
            t.start()
        self._emit("state", state=State.RUNNING)

    def pause(self, timeout: float = 5.0) -> None:
        """The user's pause: every vCPU parks and acknowledges it, then the state is PAUSED."""
        with self._cond:
            if self.state == State.PAUSED:
                return
            if self.state != State.RUNNING:
                raise StateError(f"{self.name} is {self.state.value}; only a running guest pauses")
            self._user_paused = True
        try:
            self._wait_parked(timeout)
        except HvError:
            with self._cond:
                self._user_paused = False
                self._cond.notify_all()
            raise
        with self._cond:
            if self._stopping:
                raise StateError(f"{self.name} is {self.state.value}; it ended before the pause")
            self.state = State.PAUSED
        self._emit("state", state=State.PAUSED)

    def resume(self) -> None:
        """End the user's pause. vCPUs held by quiesced() (a snapshot being written) go on
        when it is done; the state is RUNNING at once."""
        with self._cond:
            if self.state != State.PAUSED:
                raise StateError(f"{self.name} is {self.state.value}; only a paused guest resumes")
            self._user_paused = False
            self._silent_since.clear()
            self._cond.notify_all()
            self.state = State.RUNNING
        self._emit("state", state=State.RUNNING)

    @contextlib.contextmanager
    def quiesced(self, timeout: float = 5.0):
        """Hold every vCPU parked for the monitor's own work (a snapshot, the watchdog's look).
        Counted and nested; not a state, no event: a user's pause or resume meanwhile is
        honoured as a state at once and for the vCPUs when the last hold is released."""
        with self._cond:
            if not self.state.live:
                raise StateError(f"{self.name} is {self.state.value}; it has no vCPUs to hold")
            self._quiesce += 1
            self.holds += 1
        try:
            self._wait_parked(timeout)
            yield
        finally:
            with self._cond:
                self._quiesce -= 1
                self._cond.notify_all()

    def _wait_parked(self, timeout: float) -> None:
        """Kick the vCPUs and wait until each one parked (or the guest ended)."""
        if not self._threads:
            return          # not started: nothing runs
        for vcpu in self.vcpus:
            vcpu.kick()
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stopping and len(self._parked) < len(self.vcpus):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HvError(f"{self.name}: vCPUs did not acknowledge the pause within {timeout}s")
                self._cond.wait(left)

    def vcpus_parked(self) -> bool:
        """No vCPU is running guest code (never started, parked, or ended)."""
        with self._cond:
            return not self._threads or self._stopping or len(self._parked) == len(self.vcpus)

    def stop(self, reason: str = "stopped by the host", timeout: float = 5.0) -> None:
        """End the guest now (its vCPUs leave at their next exit or kick) and wait for them."""
        self._end(State.STOPPED, stop_reason=reason)
        self.join(timeout)

    def kill(self) -> None:
        """End the guest without waiting for its threads."""
        self._end(State.STOPPED, stop_reason="killed")

    def join(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _end(self, state: State, exit_code: int | None = None, stop_reason: str = "",
             crash: CrashReport | None = None) -> bool:
        """Move to a final state once; every vCPU is told to leave."""
        with self._cond:
            if not self.state.live:
                return False
            self._stopping = True
            self.exit_code, self.stop_reason, self.crash = exit_code, stop_reason, crash
            self.ended_at = time.monotonic()
            self.state = state
            self._cond.notify_all()
        for vcpu in self.vcpus:
            vcpu.kick()
        self._emit("state", state=state, exit_code=exit_code, reason=stop_reason, crash=crash)
        return True

    # ---- the vCPU thread ----
    def _park(self, vcpu: Vcpu) -> bool:
        """Honour a host request; False when the vCPU must leave."""
        with self._cond:
            while True:
                if self._stopping:
                    return False
                if self._user_paused or self._quiesce or vcpu.index in self._held:
                    self._parked.add(vcpu.index)
                    self._cond.notify_all()
                    self._cond.wait()
                    continue
                self._parked.discard(vcpu.index)
                vcpu.clear_request()
                return True

    def _vcpu_main(self, vcpu: Vcpu) -> None:
        # The loop below runs once per exit that reaches Python: hv_vcpu_run is called
        # without Vcpu.run's frame, and a port's device is one dict lookup (_serve_io).
        run, ptr, e = lib.hv_vcpu_run, vcpu.ptr, vcpu.exit
        try:
            if not self._park(vcpu):        # started while held: wait before the first run
                return
            while True:
                rc = run(ptr, e)
                if rc:
                    check(rc)
                r = e.reason
                if r == _EXIT_IO:
                    self._serve_io(e)
                elif r == lib.HV_EXIT_REQUEST:
                    if not self._park(vcpu):
                        return
                elif r == lib.HV_EXIT_MMIO:
                    self._serve_mmio(e)
                elif r == lib.HV_EXIT_DEBUG_EXIT:
                    self._end(State.STOPPED, exit_code=int(e.value), stop_reason="debug exit")
                    return
                elif r == lib.HV_EXIT_RESET:
                    self._end(State.STOPPED, stop_reason="reset (i8042)")
                    return
                elif r == lib.HV_EXIT_DEBUG:
                    if not self._debug_exit(vcpu, e):
                        return
                else:
                    raise self._fault_of(e)
        except _GuestFault as f:
            self._crash(vcpu, f.reason, f.detail, f.instruction)
        except (DeviceError, GuestMemoryError) as ex:
            self._crash(vcpu, "bad device access", str(ex))
        except Exception as ex:     # a Python device or the monitor failed: contain it
            self._crash(vcpu, "device error", f"{type(ex).__name__}: {ex}")

    def _debug_exit(self, vcpu: Vcpu, e) -> bool:
        """KVM_EXIT_DEBUG: the debugger's breakpoint or step holds every vCPU (vmm/debug.py);
        with no debugger attached the vCPU goes on. False when the vCPU must leave."""
        debug = self.debug
        if debug is not None:
            debug.on_exit(vcpu, e)
        return self._park(vcpu)

    # ---- the debugger's hold (vmm/debug.py): parks vCPUs apart from the user's pause ----
    def hold(self, indices=None) -> None:
        """Park these vCPUs (default: all) at their next exit; a vCPU not started yet parks
        before its first instruction. wait_held() waits until they have."""
        chosen = set(range(len(self.vcpus)) if indices is None else indices)
        with self._cond:
            self._held |= chosen
        for i in chosen:
            self.vcpus[i].kick()

    def release(self, indices=None) -> None:
        with self._cond:
            self._held -= set(range(len(self.vcpus)) if indices is None else indices)
            self._cond.notify_all()

    def wait_held(self, timeout: float = 5.0) -> bool:
        """True once every held vCPU is parked, or the guest never started or has ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.state.live and self._threads and not self._held <= self._parked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    @property
    def debug_stopped(self) -> bool:
        """A debugger holds the guest: every vCPU it holds is parked (or not started yet)."""
        with self._cond:
            return (self.state.live and bool(self._held)
                    and (not self._threads or self._held <= self._parked))

    def _fault_of(self, e) -> _GuestFault:
        r = e.reason
        if r == lib.HV_EXIT_SHUTDOWN:
            return _GuestFault("triple fault")
        if r == lib.HV_EXIT_INTERNAL:
            what = INTERNAL_SUBERRORS.get(e.suberror, f"internal error {e.suberror}")
            info = [e.info[i] for i in range(e.ndata)]
            insn = emulation_bytes(info, e.ndata) if e.suberror == lib.KVM_INTERNAL_ERROR_EMULATION else b""
            return _GuestFault(what, "KVM could not emulate an instruction" if insn else "", insn)
        if r == lib.HV_EXIT_FAIL_ENTRY:
            return _GuestFault("entry failure", f"hardware reason {e.info[0]:#x}")
        if r == lib.HV_EXIT_BAD_RAM:
            return _GuestFault("corrupt snapshot page", self.ram_failure() or "")
        if r == lib.HV_EXIT_SYSTEM_EVENT:
            return _GuestFault("system event", f"type {e.info[0]}")
        return _GuestFault("unhandled exit", exit_name(e.kvm_reason))

    def _serve_io(self, e) -> None:
        size, count = e.size, e.count
        hit = self.ports.owner(e.port)          # (device, offset, room)
        if hit is None or size > hit[2]:
            raise _GuestFault("bad device access", f"port {e.port:#x} has no device")
        dev, offset = hit[0], hit[1]
        if count == 1:      # the common case, without a buffer object or slices
            if e.direction == _IO_OUT:
                dev.write(offset, size, e.value)    # C put the word there
            else:
                word = e.data if size == 1 else ffi.cast(_IO_WORD[size], e.data)
                word[0] = dev.read(offset, size) & ((1 << (8 * size)) - 1)
            return
        data = ffi.buffer(e.data, size * count)
        for i in range(count):
            chunk = slice(i * size, (i + 1) * size)
            if e.direction == _IO_OUT:
                dev.write(offset, size, int.from_bytes(data[chunk], "little"))
            else:
                data[chunk] = dev.read(offset, size).to_bytes(size, "little")

    def _serve_mmio(self, e) -> None:
        addr, length, write = e.mmio_addr, e.mmio_len, bool(e.mmio_is_write)
        if not 0 < length <= 8:
            raise _GuestFault("bad device access", f"MMIO {'write' if write else 'read'} of {length} bytes at {addr:#x}")
        found = self.mmio.find(addr, length)
        data = ffi.buffer(e.data, 8)
        if found is None:       # nobody's MMIO: reads float high, writes vanish, and it is counted
            self.unowned_mmio += 1
            if not write:
                data[:8] = b"\xff" * 8
            return
        dev, offset = found
        if write:
            dev.write(offset, length, int.from_bytes(data[:length], "little"))
        else:
            data[:length] = dev.read(offset, length).to_bytes(length, "little")

    def _crash(self, vcpu: Vcpu | None, reason: str, detail: str = "", instruction: bytes = b"") -> None:
        report = CrashReport(reason=reason, detail=detail, vcpu=vcpu.index if vcpu else 0)
        if vcpu is not None:
            try:
                report.registers = register_dump(vcpu)
                if not instruction:
                    instruction = self.instruction_at(vcpu, report.registers["rip"])
            except HvError:
                pass
        report.instruction = instruction
        self._end(State.CRASHED, stop_reason=report.summary(), crash=report)

    def instruction_at(self, vcpu: Vcpu, rip: int, length: int = 15) -> bytes:
        phys = vcpu.translate(rip)
        if phys is None:
            return b""
        for n in range(length, 0, -1):      # stop short of the end of RAM
            try:
                return self.memory.read(phys, n)
            except GuestMemoryError:
                continue
        return b""

    # ---- runaway detection ----
    def check_runaway(self, now: float | None = None) -> bool:
        """See _check_runaway; skipped while a snapshot holds the machine paused."""
        if not self._control.acquire(blocking=False):
            return False
        try:
            return self._check_runaway(now)
        finally:
            self._control.release()

    def _check_runaway(self, now: float | None = None) -> bool:
        """Crash the guest if a vCPU made no exit for watchdog_s with interrupts off and is
        not halted (a runaway loop). Briefly pauses the guest to look. True if it crashed."""
        window = self.config.watchdog_s
        if window <= 0 or self.state != State.RUNNING or self._held:
            return False
        now = time.monotonic() if now is None else now
        suspects = []
        for vcpu in self.vcpus:
            total = lib.hv_vcpu_exit_total(vcpu.ptr)
            last_total, since = self._silent_since.get(vcpu.index, (None, now))
            if total != last_total:
                self._silent_since[vcpu.index] = (total, now)
            elif now - since >= window:
                suspects.append(vcpu)
        if not suspects:
            return False
        try:
            with self.quiesced(timeout=2.0):        # a look, not a pause: no state, no event
                return self._crash_runaways(suspects, window)
        except HvError:
            return False

    def _crash_runaways(self, suspects: list[Vcpu], window: float) -> bool:
        for vcpu in suspects:
            regs = register_dump(vcpu)
            halted = vcpu.get_mp_state() == lib.KVM_MP_STATE_HALTED
            if not halted and not regs["rflags"] & RFLAGS_IF:
                report = CrashReport(
                    reason="runaway loop",
                    detail=f"no exit for {window:g}s with interrupts off",
                    vcpu=vcpu.index, registers=regs,
                    instruction=self.instruction_at(vcpu, regs["rip"]))
                self._end(State.CRASHED, stop_reason=report.summary(), crash=report)
                return True
        return False

    # ---- snapshots (the file format: vmm/snapshot.py) ----
    def snapshot(self, path: str) -> dict:
        """Save the machine to path. Its vCPUs are held (quiesced) while it is written and go
        on afterwards; the state is not touched, so a user's pause stays a pause and a
        running guest never shows as paused. Returns snapshot.write's summary."""
        with self._control:
            if not self.state.live:
                raise StateError(f"{self.name} is {self.state.value}; only a live guest can be snapshotted")
            with self.quiesced():
                with self.board.quiesced():   # no virtio request moves guest RAM mid-save
                    from hvtui.vmm import snapshot    # here: a run that takes none does not load it
                    return snapshot.write(path, self)

    @classmethod
    def from_snapshot(cls, snap: snapshot.Snapshot, name: str | None = None, on_event=None,
                      kvm: Kvm | None = None, **overrides) -> Machine:
        """A new `created` machine continuing a verified snapshot (a clone under another name);
        overrides replace fields of its saved configuration (another disk file, say)."""
        kvm = kvm or Kvm.get()
        snap.check_host(kvm)
        known = {f.name for f in dataclasses.fields(MachineConfig)}
        saved = {k: v for k, v in snap.config.items() if k in known}
        config = MachineConfig(**{**saved, "name": name or saved["name"], **overrides})
        return cls(config, on_event, kvm, snapshot=snap)

    def save_state(self) -> dict:
        """Every vCPU, the VM (irqchip, PIT, clock, UART, i8042) and every bus device with save()."""
        if not self.vcpus_parked():
            raise StateError(f"{self.name} is running; hold its vCPUs before saving its state")
        devices = {}
        for bus in (self.ports, self.mmio):
            for base, _, dev in bus.ranges():
                if not hasattr(dev, "save"):
                    raise SnapshotError(f"{self.name}: device {type(dev).__name__} at {bus.name} {base:#x} "
                                        "has no save(): this machine cannot be snapshotted")
                devices[f"{bus.name}:{base:#x}"] = dev.save()
        return {"vcpus": [v.save() for v in self.vcpus], "vm": self.vm.save(), "devices": devices}

    def restore_state(self, state: dict) -> None:
        """Put back what save_state() returned (vCPU CPUIDs set, devices on their buses)."""
        self.vm.restore(state["vm"])
        for vcpu, saved in zip(self.vcpus, state["vcpus"], strict=True):
            vcpu.restore(saved)
        owners = {f"{bus.name}:{base:#x}": dev for bus in (self.ports, self.mmio) for base, _, dev in bus.ranges()}
        for key, saved in state["devices"].items():
            if key not in owners:
                raise SnapshotError(f"the snapshot holds a device at {key} that this machine lacks")
            owners[key].restore(saved)

    def _restore(self, snap: snapshot.Snapshot) -> None:
        """_build's twin for a snapshot. RAM is anonymous memory filled on first touch from
        the file, each page verified first (vmm/lazyram.py), so the cost does not grow with
        what the guest wrote; without a userfaultfd (or for a version-1 file) every page is
        verified now and the file mapped copy-on-write (MAP_PRIVATE) instead."""
        self.vm = VmPool.for_kvm(self.kvm).take()
        lazy = snap.sums is not None and not snap.pages_checked and lazyram.available()
        if not lazy:
            from hvtui.vmm import snapshot    # loaded already: snap came from it
            snapshot.check_pages(snap)
        for r in snap.regions:
            host = (self.vm.map_ram(r.slot, r.gpa, r.size) if lazy
                    else self.vm.map_ram(r.slot, r.gpa, r.size, snap.fd, snap.mem_off + r.offset))
            self.memory.add(r.gpa, r.size, host)
            self._ram_hint[r.slot] = r.runs
        if lazy:     # before any device's restore can read guest RAM
            self.lazy = lazyram.LazyRam(self.vm, snap, self._ram_failed)
        self._add_devices()
        self._add_vcpus()
        try:
            self.restore_state(snap.state["machine"])
        except (ValueError, KeyError, TypeError, OverflowError, IndexError, AttributeError) as e:
            raise SnapshotError(f"{snap.path}: state does not fit this machine: {e}") from None
        except SnapshotError as e:
            raise SnapshotError(f"{snap.path}: state does not fit this machine: {e}") from None

    def _ram_failed(self, reason: str) -> None:
        """The lazy RAM's watcher: a page failed (a running vCPU may have said so first). A
        guest not started yet stays `created`: its start crashes it at once (no vCPU enters
        KVM_RUN: HV_EXIT_BAD_RAM), so a restore is never mistaken for an ended guest that
        `start` would boot again from its image."""
        if self.state == State.CREATED:
            return
        self._crash(None, "corrupt snapshot page", reason)

    def ram_failure(self) -> str | None:
        """Why a lazily restored RAM failed (a page's gpa and what is wrong), or None."""
        return self.lazy.failure() if self.lazy is not None else None

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def ram_regions(self) -> list[tuple]:
        """(slot, gpa, size, host pointer, hint runs or None) of each RAM slot, in gpa order."""
        return [(slot, r.gpa, r.size, r.host, self._ram_hint.get(slot))
                for slot, r in enumerate(self.memory.regions)]

    def console_offset(self) -> int:
        """Bytes the guest has sent to COM1 in its whole life (a restored one counts on)."""
        return self.vm.uart_stats()["tx_bytes"] if self.vm else 0

    @property
    def exit_status(self) -> int:
        """The status a debug-exit write of exit_code means (0..255), by the guest's convention."""
        v = self.exit_code or 0
        return ((v << 1) | 1) & 0xFF if self.config.exit_code_style == "qemu" else v & 0xFF

    # ---- I/O and stats ----
    @property
    def console_fd(self) -> int:
        return self.vm.console_fd

    def read_console(self) -> bytes:
        return self.vm.console_read() if self.vm else b""

    def push_input(self, data: bytes) -> int:
        if self.vm is None or not self.state.live:
            return 0
        return self.vm.push_input(data)

    def push_keys(self, keys: list[int]) -> int:
        """Offer PS/2 keys (HV_KEY_* codes) to the guest's keyboard; how many it took."""
        if self.vm is None or not self.state.live:
            return 0
        return self.vm.push_keys(keys)

    def vga_screen(self):
        """The guest's VGA text screen as it is now (textscreen.TextScreen), read from its RAM."""
        from hvtui.textscreen import TextScreen
        board = self.board
        return board.vga.screen(self.memory) if board is not None else TextScreen.blank()

    def sample(self) -> MachineSample:
        """Counters of every vCPU, read without locks (cost does not grow with guest size).
        The per-reason and per-port tables are read again only for a vCPU that made exits
        since the last sample (an idle guest's are the same dicts; nobody changes them)."""
        vcpus = []
        for vcpu in self.vcpus:
            s = vcpu.stats
            total = lib.hv_vcpu_exit_total(vcpu.ptr)
            last = self._tables.get(vcpu.index)
            if last is not None and last[0] == total:
                exits, ports = last[1], last[2]
            else:
                exits = {exit_name(i): s.exits[i] for i in range(lib.HV_NR_KVM_EXITS) if s.exits[i]}
                ports = {s.ports[i].port: s.ports[i].count for i in range(lib.HV_PORT_SLOTS) if s.ports[i].used}
                total = sum(exits.values())
                self._tables[vcpu.index] = (total, exits, ports)
            vcpus.append(VcpuSample(
                index=vcpu.index, exits=exits, ports=ports, ns_in_run=s.ns_in_run,
                ns_in_monitor=s.ns_in_monitor, python_exits=s.python_exits, kicks=s.kicks,
                thread_id=vcpu.thread_id, total_exits=total, cpu_s=vcpu.cpu_seconds()))
        return MachineSample(
            time=time.monotonic(), vcpus=vcpus, ram_bytes=self.config.memory_mib << 20,
            resident_bytes=self.vm.resident_bytes() if self.vm else 0,
            uart=self.vm.uart_stats() if self.vm else {},
            unowned=self.unowned_mmio + sum(v.stats.unassigned_io for v in self.vcpus))

    def registers(self, index: int = 0) -> dict[str, int]:
        """Register dump of one vCPU; the guest must not be running."""
        if self.state == State.RUNNING and not self.debug_stopped:
            raise StateError(f"{self.name} is running; pause it to read registers")
        return register_dump(self.vcpus[index])

    def destroy(self) -> None:
        """Free everything; the guest must have ended (or never started). Waits for a
        snapshot being written, which reads the vCPUs and RAM."""
        with self._control:
            self._destroy()

    def _destroy(self) -> None:
        if self.state.live and self._threads:
            self.stop(reason="destroyed")
        if any(t.is_alive() for t in self._threads):
            return   # a vCPU is still inside C: keep its memory mapped rather than pull it away
        if self.board is not None:
            self.board.close()
            self.board = None
        for vcpu in self.vcpus:
            vcpu.destroy()
        self.vcpus = []
        self.memory = GuestMemory()
        if self.lazy is not None:
            self.lazy.close()
        if self.vm is not None:
            self.vm.destroy()
            self.vm = None
        admission.release(id(self))
