"""Guest debugging for one Machine, the back end of the gdb server (hvtui/gdb/): what this
host's KVM can do, breakpoints and watchpoints in the four debug-register slots (or int3
where the host can), single steps, memory through the guest's page tables, and the stop
that holds every vCPU when one of them hits something.

On KVM-PVM (no VT-x/AMD-V) KVM emulates CPL-0 code: single steps and hardware execution
breakpoints work there, int3 ends in an emulation failure and data watchpoints never
fire; at CPL 3 nothing stops. So breakpoints take a debug-register slot there, and every
refusal says why (DebugRefused).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from hvtui._core import lib
from hvtui.errors import GuestMemoryError, HvError, StateError

HW_SLOTS = 4
EXCEPTION_DB, EXCEPTION_BP = 1, 3
DR6_BS = 1 << 14                         # DR6: the single step happened
DR7_GE_RESERVED = 0x600                  # DR7: GE and the reserved bit 10, as QEMU sets them
RW_BITS = {"exec": 0, "write": 1, "access": 3}
LEN_BITS = {1: 0, 2: 1, 8: 2, 4: 3}
PAGE = 4096
INT3 = b"\xcc"
KINDS = {0: "sw", 1: "hw", 2: "write", 3: "read", 4: "access"}   # gdb's Z0..Z4


class DebugRefused(HvError):
    """Something the host's KVM or the x86 debug registers cannot do, with the reason."""


@dataclass(frozen=True)
class DebugCaps:
    """What guest debugging this host's KVM offers (found at run time)."""
    host: str                 # "KVM-PVM, without VT-x/AMD-V" or "KVM"
    guest_debug: bool         # KVM_CAP_SET_GUEST_DEBUG
    singlestep: bool
    hw_breakpoints: int       # debug-register slots for execution breakpoints
    sw_breakpoints: bool      # int3 (KVM_GUESTDBG_USE_SW_BP) works
    watchpoints: bool         # data breakpoints in the debug registers fire
    block_irq: bool           # a single step can keep interrupts out (KVM_GUESTDBG_BLOCKIRQ)
    user_mode: bool           # any of it works for CPL-3 code

    def lines(self) -> list[str]:
        yes = {True: "yes", False: "no"}
        return [
            f"host KVM: {self.host}",
            f"single step: {yes[self.singlestep]}" + ("" if self.user_mode else " (CPL-0 code only)"),
            f"hardware breakpoints: {self.hw_breakpoints} slots" + ("" if self.user_mode else " (CPL-0 code only)"),
            "software breakpoints (int3): " + ("yes" if self.sw_breakpoints else
                                              "no: every breakpoint takes a hardware slot"),
            "watchpoints: " + ("yes (write, access; 1, 2, 4 or 8 aligned bytes)" if self.watchpoints else
                               "no: this host never fires them (set remote hardware-watchpoint-limit 0 "
                               "for software watchpoints, which single-step)"),
        ]


def host_caps(kvm) -> DebugCaps:
    """KVM_CAP_SET_GUEST_DEBUG(2) say what KVM accepts; KVM-PVM accepts more than it does."""
    has = lib.hv_kvm_check_extension(kvm.fd, lib.KVM_CAP_SET_GUEST_DEBUG) > 0
    flags = lib.hv_kvm_check_extension(kvm.fd, lib.KVM_CAP_SET_GUEST_DEBUG2)
    if flags <= 0:     # an older KVM: the original flags
        flags = (lib.KVM_GUESTDBG_ENABLE | lib.KVM_GUESTDBG_SINGLESTEP | lib.KVM_GUESTDBG_USE_SW_BP
                 | lib.KVM_GUESTDBG_USE_HW_BP) if has else 0
    pvm = kvm.is_pvm
    hw = has and bool(flags & lib.KVM_GUESTDBG_USE_HW_BP)
    return DebugCaps(
        host="KVM-PVM, without VT-x/AMD-V" if pvm else "KVM",
        guest_debug=has,
        singlestep=has and bool(flags & lib.KVM_GUESTDBG_SINGLESTEP),
        hw_breakpoints=HW_SLOTS if hw else 0,
        sw_breakpoints=has and bool(flags & lib.KVM_GUESTDBG_USE_SW_BP) and not pvm,
        watchpoints=hw and not pvm,
        block_irq=has and bool(flags & lib.KVM_GUESTDBG_BLOCKIRQ),
        user_mode=not pvm,
    )


@dataclass
class Breakpoint:
    kind: str                 # "sw", "hw", "write", "access" (gdb's Z0, Z1, Z2, Z4)
    addr: int
    length: int
    slot: int | None = None   # the debug register it uses; None for int3
    phys: int = 0             # int3: guest-physical address of the byte
    saved: int = 0            # int3: the byte it replaced


@dataclass
class StopEvent:
    vcpu: int
    reason: str               # "breakpoint", "watch", "step", "interrupt", "trap"
    addr: int = 0             # the breakpoint's or the watched address
    kind: str = ""            # the breakpoint's kind


class GuestDebug:
    """The debugger's view of one machine. Breakpoints and steps are per-vCPU KVM state,
    set only while every vCPU is parked; on_exit runs on the vCPU thread that stopped."""

    def __init__(self, machine):
        self.machine = machine
        self.caps = host_caps(machine.kvm)
        self.breakpoints: dict[tuple[str, int, int], Breakpoint] = {}
        self.slots: list[Breakpoint | None] = [None] * self.caps.hw_breakpoints
        self.listener = None          # called with no argument (any thread) when a stop is ready
        self.last_refusal = ""
        self._lock = threading.Lock()
        self._event: StopEvent | None = None
        self._applied: dict[int, tuple] = {}
        self.stops = 0                # stops so far (a new one changes what a view shows)

    # ---- attach, detach ----
    def attach(self) -> None:
        with self._lock:
            if self.machine.debug is not None and self.machine.debug is not self:
                raise StateError(f"{self.machine.name} already has a debugger attached")
            self.machine.debug = self

    def detach(self, timeout: float = 5.0) -> None:
        """Take every breakpoint out, switch guest debugging off and let the guest run on
        (blocks while the vCPUs park: call it off the event loop)."""
        m = self.machine
        if m.state.live:
            m.hold()
            m.wait_held(timeout)
        for bp in list(self.breakpoints.values()):
            self._take_out(bp)
        self.breakpoints.clear()
        self.slots = [None] * len(self.slots)
        if m.state.live and m.vm is not None:
            for vcpu in m.vcpus:
                if self._applied.get(vcpu.index, (0,))[0]:
                    try:
                        vcpu.set_guest_debug(0)
                    except HvError:
                        pass
        self._applied.clear()
        with self._lock:
            self._event = None
        m.debug = None
        m.release()

    # ---- stopping and running ----
    def stop(self, vcpu: int = 0, timeout: float = 5.0) -> StopEvent | None:
        """Hold every vCPU (Ctrl-C in gdb). Blocks until they are parked: not on the loop."""
        self.machine.hold()
        self.machine.wait_held(timeout)
        with self._lock:
            if self._event is None:
                self._event = StopEvent(vcpu, "interrupt")
                self.stops += 1
            return self._event

    def take_event(self) -> StopEvent | None:
        with self._lock:
            return self._event

    def resume(self, actions: dict[int, str]) -> None:
        """Run the vCPUs named in actions ('c' continue, 's' one step); the others stay held.
        Every vCPU must be parked (the guest stopped)."""
        for i in actions:
            if actions[i] == "s" and not self.caps.singlestep:
                raise DebugRefused(self._refused("single step", "this host's KVM cannot single-step a guest"))
        for vcpu in self.machine.vcpus:
            self._apply(vcpu, actions.get(vcpu.index) == "s")
        with self._lock:
            self._event = None
        self.machine.release(actions)

    def on_exit(self, vcpu, e) -> None:
        """KVM_EXIT_DEBUG on vcpu's thread: hold every vCPU and keep the first stop."""
        event = self._classify(vcpu.index, int(e.info[0]), int(e.info[1]), int(e.info[2]))
        self.machine.hold()
        with self._lock:
            first = self._event is None
            if first:
                self._event = event
                self.stops += 1
            listener = self.listener
        if first and listener is not None:
            listener()

    def _classify(self, index: int, exception: int, pc: int, dr6: int) -> StopEvent:
        if exception == EXCEPTION_BP:
            bp = self.breakpoints.get(("sw", pc, 1))
            return StopEvent(index, "breakpoint", pc, "sw") if bp else StopEvent(index, "trap", pc)
        for slot, bp in enumerate(self.slots):
            if bp is not None and dr6 & (1 << slot):
                if bp.kind in ("write", "access"):
                    return StopEvent(index, "watch", bp.addr, bp.kind)
                return StopEvent(index, "breakpoint", bp.addr, bp.kind)
        if dr6 & DR6_BS:
            return StopEvent(index, "step", pc)
        return StopEvent(index, "trap", pc)

    def _apply(self, vcpu, step: bool) -> None:
        """Give one parked vCPU the breakpoints and the step flag (only when they changed)."""
        control, dr = 0, [0] * 8
        used = [(i, bp) for i, bp in enumerate(self.slots) if bp is not None]
        sw = any(bp.slot is None for bp in self.breakpoints.values())
        if step or used or sw:
            control = lib.KVM_GUESTDBG_ENABLE
            if step:
                control |= lib.KVM_GUESTDBG_SINGLESTEP
                if self.caps.block_irq:
                    control |= lib.KVM_GUESTDBG_BLOCKIRQ
            if sw:
                control |= lib.KVM_GUESTDBG_USE_SW_BP
            if used:
                control |= lib.KVM_GUESTDBG_USE_HW_BP
                dr[7] = DR7_GE_RESERVED
                for i, bp in used:
                    rw = RW_BITS.get(bp.kind, RW_BITS["exec"])
                    length = LEN_BITS[bp.length] if bp.kind in ("write", "access") else 0
                    dr[i] = bp.addr
                    dr[7] |= (2 << (i * 2)) | (rw << (16 + i * 4)) | (length << (18 + i * 4))
        key = (control, tuple(dr))
        if self._applied.get(vcpu.index) != key:
            vcpu.set_guest_debug(control, dr)
            self._applied[vcpu.index] = key

    # ---- breakpoints and watchpoints ----
    def _refused(self, what: str, why: str) -> str:
        self.last_refusal = f"{what}: {why}"
        self.machine._emit("debug", refused=self.last_refusal)
        return why

    def insert(self, ztype: int, addr: int, length: int, vcpu: int = 0) -> None:
        """gdb's Z packet. Raises DebugRefused naming what the host or x86 cannot do."""
        kind = KINDS.get(ztype)
        if kind is None:
            raise DebugRefused(f"unknown breakpoint type {ztype}")
        key = (kind, addr, length)
        if key in self.breakpoints:
            return
        caps = self.caps
        what = {"sw": "breakpoint", "hw": "hardware breakpoint", "write": "watchpoint",
                "read": "read watchpoint", "access": "access watchpoint"}[kind] + f" at {addr:#x}"
        if not caps.guest_debug:
            raise DebugRefused(self._refused(what, "this host's KVM has no guest debugging "
                                                   "(KVM_CAP_SET_GUEST_DEBUG)"))
        if kind == "read":
            raise DebugRefused(self._refused(what, "x86 debug registers cannot watch reads alone; "
                                                   "use awatch (reads and writes)"))
        if kind in ("write", "access"):
            if not caps.watchpoints:
                raise DebugRefused(self._refused(what, f"this host's KVM ({caps.host}) never fires data "
                                                       "watchpoints; set remote hardware-watchpoint-limit 0 "
                                                       "for software ones"))
            if length not in LEN_BITS or addr % length:
                raise DebugRefused(self._refused(what, "a hardware watchpoint covers 1, 2, 4 or 8 bytes "
                                                       "at an address aligned to its size"))
        if kind == "sw" and caps.sw_breakpoints:
            phys = self._translate(addr, vcpu)
            if phys is None:
                raise DebugRefused(self._refused(what, "the address is not mapped in the guest's page tables"))
            try:
                saved = self.machine.memory.read(phys, 1)[0]
                self.machine.memory.write(phys, INT3)
            except GuestMemoryError:
                raise DebugRefused(self._refused(what, "the address is not in guest RAM")) from None
            self.breakpoints[key] = Breakpoint(kind, addr, length, phys=phys, saved=saved)
            return
        free = [i for i, bp in enumerate(self.slots) if bp is None]
        if not free:
            why = f"all {len(self.slots)} hardware breakpoint slots are in use"
            if not self.slots:
                why = "this host's KVM has no hardware breakpoints"
            elif kind == "sw":
                why += (f" (this host's KVM, {caps.host}, cannot do int3 breakpoints, "
                        "so every breakpoint takes a slot)")
            raise DebugRefused(self._refused(what, why))
        bp = Breakpoint(kind, addr, length if kind in ("write", "access") else 1, slot=free[0])
        self.slots[free[0]] = bp
        self.breakpoints[key] = bp

    def remove(self, ztype: int, addr: int, length: int) -> None:
        bp = self.breakpoints.pop((KINDS.get(ztype, ""), addr, length), None)
        if bp is not None:
            self._take_out(bp)

    def _take_out(self, bp: Breakpoint) -> None:
        if bp.slot is not None:
            self.slots[bp.slot] = None
        elif self.machine.vm is not None:
            try:
                if self.machine.memory.read(bp.phys, 1) == INT3:
                    self.machine.memory.write(bp.phys, bytes([bp.saved]))
            except GuestMemoryError:
                pass

    # ---- memory through the guest's page tables ----
    def _translate(self, addr: int, vcpu: int) -> int | None:
        if not 0 <= addr < 1 << 64:
            return None
        return self.machine.vcpus[vcpu].translate(addr)

    def read_memory(self, addr: int, length: int, vcpu: int = 0) -> bytes:
        """Bytes at a guest-virtual address, page by page; short at the first page that is
        unmapped or not RAM (empty if the first is). int3 bytes read as what they replaced."""
        out = bytearray()
        while len(out) < length:
            va = addr + len(out)
            n = min(length - len(out), PAGE - va % PAGE)
            phys = self._translate(va, vcpu)
            if phys is None:
                break
            try:
                out += self.machine.memory.read(phys, n)
            except GuestMemoryError:
                break
        for bp in self.breakpoints.values():
            if bp.slot is None and addr <= bp.addr < addr + len(out):
                out[bp.addr - addr] = bp.saved
        return bytes(out)

    def write_memory(self, addr: int, data: bytes, vcpu: int = 0) -> None:
        """Write all of data or nothing (every page is translated and checked first)."""
        pieces, done = [], 0
        while done < len(data):
            va = addr + done
            n = min(len(data) - done, PAGE - va % PAGE)
            phys = self._translate(va, vcpu)
            if phys is None:
                raise GuestMemoryError(f"guest-virtual {va:#x} is not mapped")
            self.machine.memory.check(phys, n)
            pieces.append((phys, va, data[done:done + n]))
            done += n
        for phys, va, chunk in pieces:
            chunk = bytearray(chunk)
            for bp in self.breakpoints.values():   # keep int3 in place; remember the new byte
                if bp.slot is None and va <= bp.addr < va + len(chunk):
                    bp.saved = chunk[bp.addr - va]
                    chunk[bp.addr - va] = INT3[0]
            self.machine.memory.write(phys, bytes(chunk))
