"""The Python face of hvtui._core: /dev/kvm, VMs and vCPUs as small objects.

Every failing call into the core becomes a KvmError naming the operation (the core
records it per thread); a missing /dev/kvm or permission becomes KvmUnavailable with
what to do.
"""
from __future__ import annotations

import errno
import os
import threading

from hvtui._core import ffi, lib
from hvtui.errors import KvmError, KvmUnavailable

KVM_PATH = os.environ.get("HVTUI_KVM_PATH", "/dev/kvm")


def check(rc: int, detail: str = "") -> int:
    """Raise KvmError for a negative return (-errno), naming the failing operation."""
    if rc < 0:
        raise KvmError(ffi.string(lib.hv_last_op()).decode(), -rc, detail)
    return rc


def _flexible(ctype: str, entry_ctype: str, n: int):
    """A struct that ends in a flexible array (kvm_cpuid2, kvm_msrs, kvm_msr_list) with
    room for n entries: (pointer, owning buffer); keep the buffer alive while using it."""
    buf = ffi.new("char[]", ffi.sizeof(ctype) + n * ffi.sizeof(entry_ctype))
    return ffi.cast(f"{ctype} *", buf), buf


class Kvm:
    """The KVM system device: opened once per process, capabilities checked."""

    _instance: Kvm | None = None
    _lock = threading.Lock()

    def __init__(self, path: str = KVM_PATH):
        fd = lib.hv_kvm_open(path.encode())
        if fd < 0:
            err = -fd
            if err == errno.ENOENT:
                raise KvmUnavailable(
                    f"{path} does not exist: KVM is not available on this machine "
                    "(load kvm_intel or kvm_amd, and enable virtualisation in the firmware)")
            if err in (errno.EACCES, errno.EPERM):
                raise KvmUnavailable(
                    f"no permission to open {path}: join the kvm group "
                    "(sudo usermod -aG kvm $USER, then log in again)")
            raise KvmUnavailable(f"cannot open {path}: {os.strerror(err)}")
        self.fd = fd
        missing = ffi.new("char[]", 128)
        if lib.hv_kvm_check(fd, missing, 128) < 0:
            os.close(fd)
            raise KvmUnavailable(f"{path} lacks what hvtui needs: {ffi.string(missing).decode()}")
        self.max_vcpus = lib.hv_kvm_max_vcpus(fd)
        self.xsave_size = lib.hv_xsave_size(fd)
        self.is_pvm = bool(lib.hv_kvm_is_pvm())
        self._cpuid = None
        self._msr_indices = None

    @classmethod
    def get(cls) -> Kvm:
        """The process-wide instance."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = Kvm()
            return cls._instance

    @property
    def kind(self) -> str:
        """'pvm' on KVM-PVM (nested, no VT-x/AMD-V), else 'hw'."""
        return "pvm" if self.is_pvm else "hw"

    def supported_cpuid(self) -> list[tuple]:
        """KVM_GET_SUPPORTED_CPUID as (function, index, flags, eax, ebx, ecx, edx) tuples."""
        if self._cpuid is None:
            n = 256
            cpuid, _buf = _flexible("struct kvm_cpuid2", "struct kvm_cpuid_entry2", n)
            cpuid.nent = n
            check(lib.hv_kvm_get_supported_cpuid(self.fd, cpuid))
            self._cpuid = [
                (e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx)
                for e in (cpuid.entries[i] for i in range(cpuid.nent))
            ]
        return self._cpuid

    def cpuid_fingerprint(self) -> str:
        """SHA-256 of KVM's supported CPUID: equal on hosts whose guests see the same CPU.
        The fields that name the host core the call ran on (APIC IDs) are left out."""
        norm = []
        for function, index, flags, eax, ebx, ecx, edx in sorted(self.supported_cpuid()):
            if function == 1:
                ebx &= 0x00FFFFFF                 # initial APIC ID
            elif function in (0xB, 0x1F):
                edx = 0                           # x2APIC ID
            elif function == 0x8000001E:
                eax = ebx = ecx = 0               # AMD extended APIC, core and node IDs
            norm.append((function, index, flags, eax, ebx, ecx, edx))
        text = ";".join(",".join(f"{v:x}" for v in e) for e in norm)
        import hashlib      # here: only snapshots ask (its import is a millisecond of every start-up)
        return hashlib.sha256(text.encode()).hexdigest()

    def msr_index_list(self) -> list[int]:
        """KVM_GET_MSR_INDEX_LIST: the MSRs a snapshot saves (fixed for the process)."""
        if self._msr_indices is None:
            n = 1024
            lst, _buf = _flexible("struct kvm_msr_list", "uint32_t", n)
            lst.nmsrs = n
            check(lib.hv_kvm_get_msr_index_list(self.fd, lst))
            self._msr_indices = [lst.indices[i] for i in range(lst.nmsrs)]
        return self._msr_indices


class Vm:
    """A KVM VM with its in-kernel irqchip and PIT, COM1 and the console ring."""

    def __init__(self, kvm: Kvm):
        self.kvm = kvm
        out = ffi.new("struct hv_vm **")
        check(lib.hv_vm_create(kvm.fd, out))
        self.ptr = out[0]
        self.console_fd = lib.hv_console_fd(self.ptr)
        self._console_buf = ffi.new("uint8_t[]", 65536)

    def warm(self) -> None:
        check(lib.hv_vm_warm(self.ptr))

    def map_ram(self, slot: int, gpa: int, size: int, fd: int = -1, offset: int = 0):
        """Map size bytes of RAM at gpa; returns the host pointer (a cffi void *)."""
        host = ffi.new("void **")
        check(lib.hv_vm_map_ram(self.ptr, slot, gpa, size, fd, offset, host),
              f"{size >> 20} MiB at {gpa:#x}")
        return host[0]

    def claim_ports(self, first: int, count: int) -> None:
        check(lib.hv_vm_claim_ports(self.ptr, first, count))

    def irq_line(self, irq: int, level: int) -> None:
        check(lib.hv_vm_irq_line(self.ptr, irq, level))

    def ioeventfd(self, addr: int, length: int, fd: int, datamatch: int | None = None, pio: bool = False) -> None:
        """A guest write of length bytes at addr (matching datamatch) signals fd, with no exit."""
        flags = (lib.KVM_IOEVENTFD_FLAG_PIO if pio else 0) | (
            lib.KVM_IOEVENTFD_FLAG_DATAMATCH if datamatch is not None else 0)
        ev = ffi.new("struct kvm_ioeventfd *", {"addr": addr, "len": length, "fd": fd, "flags": flags,
                                                "datamatch": datamatch or 0})
        check(lib.hv_vm_ioeventfd(self.ptr, ev), f"{addr:#x}")

    def irqfd(self, fd: int, gsi: int) -> None:
        """Each write to fd raises interrupt line gsi (in the kernel, no monitor thread)."""
        check(lib.hv_vm_irqfd(self.ptr, ffi.new("struct kvm_irqfd *", {"fd": fd, "gsi": gsi})), f"GSI {gsi}")

    def resident_bytes(self) -> int:
        return lib.hv_vm_resident_bytes(self.ptr)

    def console_read(self) -> bytes:
        """Drain what the guest wrote to COM1 since the last call."""
        chunks = []
        while True:
            n = lib.hv_console_read(self.ptr, self._console_buf, len(self._console_buf))
            if not n:
                break
            chunks.append(bytes(ffi.buffer(self._console_buf, n)))
        return b"".join(chunks)

    def push_input(self, data: bytes) -> int:
        """Offer bytes to COM1's RX FIFO; returns how many it took (the FIFO holds 64)."""
        return lib.hv_uart_push_rx(self.ptr, data, len(data))

    def push_keys(self, keys: list[int]) -> int:
        """Offer keys (HV_KEY_* codes: set-2 code, E0, break) to the PS/2 keyboard; returns
        how many whole keys it took (its queue holds 64 bytes; the rest wait with the caller)."""
        if not keys:
            return 0
        return lib.hv_i8042_push_keys(self.ptr, ffi.new("uint16_t[]", keys), len(keys))

    def keyboard_stats(self) -> dict:
        s = ffi.new("struct hv_kbd_stats *")
        lib.hv_i8042_get_stats(self.ptr, s)
        return {"keys": s.keys, "dropped": s.dropped, "leds": s.leds, "scancode_set": s.scancode_set,
                "scanning": bool(s.scanning), "translating": bool(s.translating)}

    def wake_idle(self) -> None:
        """End the idle-port wait of the VM's vCPUs: input arrived somewhere they should look."""
        lib.hv_vm_wake_idle(self.ptr)

    def uart_stats(self) -> dict:
        s = ffi.new("struct hv_uart_stats *")
        lib.hv_uart_get_stats(self.ptr, s)
        return {"tx_bytes": s.tx_bytes, "rx_bytes": s.rx_bytes,
                "rx_overruns": s.rx_overruns, "console_dropped": s.console_dropped, "rx_pending": s.rx_pending}

    def create_pit(self) -> None:
        """The in-kernel 8254 PIT: the PC platform's timer (a tiny guest has none; see
        hv_vm_create_pit for what it costs)."""
        check(lib.hv_vm_create_pit(self.ptr))
        self.has_pit = True

    # ---- snapshot state: the in-kernel irqchip, PIT and clock, and the devices kept in C ----
    IRQCHIPS = ("KVM_IRQCHIP_PIC_MASTER", "KVM_IRQCHIP_PIC_SLAVE", "KVM_IRQCHIP_IOAPIC")
    has_pit = False

    def save(self) -> dict:
        """The VM-wide state as raw kvm structs and device blobs (bytes)."""
        chips = []
        for name in self.IRQCHIPS:
            chip = ffi.new("struct kvm_irqchip *", {"chip_id": getattr(lib, name)})
            check(lib.hv_vm_get_irqchip(self.ptr, chip))
            chips.append(bytes(ffi.buffer(chip)))
        pit = None
        if self.has_pit:
            pit = ffi.new("struct kvm_pit_state2 *")
            check(lib.hv_vm_get_pit2(self.ptr, pit))
        clock = ffi.new("struct kvm_clock_data *")
        check(lib.hv_vm_get_clock(self.ptr, clock))
        uart = ffi.new("char[]", lib.hv_uart_state_size())
        lib.hv_uart_save(self.ptr, uart)
        kbd = ffi.new("char[]", lib.hv_i8042_state_size())
        lib.hv_i8042_save(self.ptr, kbd)
        return {"irqchip": chips, "pit2": bytes(ffi.buffer(pit)) if pit is not None else None,
                "clock": bytes(ffi.buffer(clock)),
                "uart": bytes(ffi.buffer(uart)), "i8042": bytes(ffi.buffer(kbd))}

    def restore(self, state: dict) -> None:
        """Put back what save() returned (sizes checked: a blob of the wrong size raises
        ValueError). A saved PIT is made first (snapshots before PITs were only the PC
        platform's all carry one); a VM saved without one gets none."""
        for blob in state["irqchip"]:
            check(lib.hv_vm_set_irqchip(self.ptr, _struct("struct kvm_irqchip *", blob)))
        if state["pit2"] is not None:
            pit = _struct("struct kvm_pit_state2 *", state["pit2"])
            self.create_pit()
            check(lib.hv_vm_set_pit2(self.ptr, pit))
        clock = _struct("struct kvm_clock_data *", state["clock"])
        clock.flags = 0          # only the clock value; KVM refuses or reinterprets the rest
        check(lib.hv_vm_set_clock(self.ptr, clock))
        check(lib.hv_uart_restore(self.ptr, state["uart"], len(state["uart"])))
        check(lib.hv_i8042_restore(self.ptr, state["i8042"], len(state["i8042"])))

    def destroy(self) -> None:
        if self.ptr is not None:
            lib.hv_vm_destroy(self.ptr)
            self.ptr = None


def _struct(ctype: str, blob: bytes):
    """A new C struct filled from saved bytes, which must be exactly its size."""
    s = ffi.new(ctype)
    if len(blob) != ffi.sizeof(s[0]):
        raise ValueError(f"{ctype.rstrip(' *')}: {len(blob)} bytes saved, {ffi.sizeof(s[0])} expected")
    ffi.buffer(s)[:] = blob
    return s


class VmPool:
    """One warmed VM kept ready (Vm.warm: KVM-PVM charges 6-10 ms for a VM's first memory
    slot), so a restore or a new guest does not pay it; a thread prepares the next. With
    keep_spare off (a one-shot run) a VM is made when asked, and not warmed: its own first
    slot pays the cost once instead of twice; unless the run asked for one ahead
    (prefetch), while the rest of its program was still loading."""

    keep_spare = True

    def __init__(self, kvm: Kvm):
        self.kvm = kvm
        self._spare: Vm | None = None
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._refilling = False
        self._taken = 0

    def _fresh(self) -> Vm:
        vm = Vm(self.kvm)
        try:
            vm.warm()
        except KvmError:
            pass          # a cold VM still works; it just maps its first slot slower
        return vm

    def take(self) -> Vm:
        with self._lock:
            if not self.keep_spare:         # a prefetch under way is nearer done than a new VM
                self._ready.wait_for(lambda: not self._refilling, timeout=5.0)
            vm, self._spare = self._spare, None
            self._taken += 1
        if vm is None:
            vm = self._fresh() if self.keep_spare else Vm(self.kvm)
        if self.keep_spare:
            self._refill()
        return vm

    def _claim_refill(self, late_ok: bool = True) -> bool:
        with self._lock:
            if self._refilling or self._spare is not None or (not late_ok and self._taken and not self.keep_spare):
                return False
            self._refilling = True
            return True

    def _fill(self) -> None:
        try:
            vm = self._fresh()
        except Exception:
            vm = None
        with self._lock:
            self._refilling = False
            if self._spare is None:
                self._spare, vm = vm, None
            self._ready.notify_all()
        if vm is not None:
            vm.destroy()

    def _refill(self) -> None:
        if self._claim_refill():
            threading.Thread(target=self._fill, name="hvtui-vm-pool", daemon=True).start()

    def prefetch(self) -> None:
        """Make a warmed VM now, on this thread, for the next take() (keep_spare or not).
        A one-shot run calls it on a thread of its own as it starts: KVM's part (the VM and
        its first memory slot, 7-10 ms on KVM-PVM) then overlaps the imports of the rest.
        Too late (the run already took a VM of its own): nothing."""
        if self._claim_refill(late_ok=False):
            self._fill()

    _pools: dict = {}

    @classmethod
    def for_kvm(cls, kvm: Kvm) -> VmPool:
        with Kvm._lock:
            return cls._pools.setdefault(id(kvm), cls(kvm))


class Vcpu:
    """One vCPU: its run loop in C, its state ioctls and its counters."""

    def __init__(self, vm: Vm, index: int):
        self.vm = vm
        self.index = index
        out = ffi.new("struct hv_vcpu **")
        check(lib.hv_vcpu_create(vm.ptr, index, out))
        self.ptr = out[0]
        self.exit = ffi.new("struct hv_exit *")     # what hv_vcpu_run fills (the machine's vCPU loop calls it)
        self.stats = lib.hv_vcpu_stats(self.ptr)

    def kick(self) -> None:
        lib.hv_vcpu_kick(self.ptr)

    def clear_request(self) -> None:
        lib.hv_vcpu_clear_request(self.ptr)

    @property
    def thread_id(self) -> int:
        return lib.hv_vcpu_thread_id(self.ptr)

    def cpu_seconds(self) -> float | None:
        """CPU time of the thread running this vCPU (None before it runs, or once it ended)."""
        ns = lib.hv_vcpu_cpu_ns(self.ptr)
        return ns / 1e9 if ns >= 0 else None

    def _get(self, ctype: str, fn):
        s = ffi.new(ctype)
        check(fn(self.ptr, s))
        return s

    def get_regs(self):
        return self._get("struct kvm_regs *", lib.hv_vcpu_get_regs)

    def set_regs(self, regs) -> None:
        check(lib.hv_vcpu_set_regs(self.ptr, regs))

    def get_sregs(self):
        return self._get("struct kvm_sregs *", lib.hv_vcpu_get_sregs)

    def set_sregs(self, sregs) -> None:
        check(lib.hv_vcpu_set_sregs(self.ptr, sregs))

    def get_mp_state(self) -> int:
        return self._get("struct kvm_mp_state *", lib.hv_vcpu_get_mp_state).mp_state

    def set_mp_state(self, state: int) -> None:
        s = ffi.new("struct kvm_mp_state *", {"mp_state": state})
        check(lib.hv_vcpu_set_mp_state(self.ptr, s))

    def get_lapic(self) -> bytearray:
        """The local APIC's 1 KiB register page."""
        s = self._get("struct kvm_lapic_state *", lib.hv_vcpu_get_lapic)
        return bytearray(ffi.buffer(s))

    def set_lapic(self, regs: bytes) -> None:
        check(lib.hv_vcpu_set_lapic(self.ptr, _struct("struct kvm_lapic_state *", bytes(regs))))

    def set_cpuid(self, entries: list[tuple]) -> None:
        cpuid, _buf = _flexible("struct kvm_cpuid2", "struct kvm_cpuid_entry2", len(entries))
        cpuid.nent = len(entries)
        for i, (function, index, flags, eax, ebx, ecx, edx) in enumerate(entries):
            e = cpuid.entries[i]
            e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx = function, index, flags, eax, ebx, ecx, edx
        check(lib.hv_vcpu_set_cpuid(self.ptr, cpuid))

    def tsc_khz(self) -> int:
        return check(lib.hv_vcpu_get_tsc_khz(self.ptr))

    def get_fpu(self):
        return self._get("struct kvm_fpu *", lib.hv_vcpu_get_fpu)

    def set_fpu(self, fpu) -> None:
        check(lib.hv_vcpu_set_fpu(self.ptr, fpu))

    def set_guest_debug(self, control: int, debugreg: list[int] | None = None) -> None:
        """KVM_SET_GUEST_DEBUG (KVM_GUESTDBG_* flags, DR0-DR7); only while the vCPU is parked."""
        regs = ffi.new("uint64_t[8]", list(debugreg or [0] * 8))
        check(lib.hv_vcpu_set_guest_debug(self.ptr, control, regs))

    def translate(self, linear: int) -> int | None:
        """Guest-virtual to guest-physical through the vCPU's page tables (None if unmapped)."""
        tr = ffi.new("struct kvm_translation *", {"linear_address": linear})
        if lib.hv_vcpu_translate(self.ptr, tr) < 0 or not tr.valid:
            return None
        return tr.physical_address

    # ---- snapshot state ----
    _BLOBS = (  # name, C type, getter, setter; restored in this order, then MSRs, MP state, events
        ("sregs", "struct kvm_sregs *", "hv_vcpu_get_sregs", "hv_vcpu_set_sregs"),
        ("regs", "struct kvm_regs *", "hv_vcpu_get_regs", "hv_vcpu_set_regs"),
        ("fpu", "struct kvm_fpu *", "hv_vcpu_get_fpu", "hv_vcpu_set_fpu"),
        ("xcrs", "struct kvm_xcrs *", "hv_vcpu_get_xcrs", "hv_vcpu_set_xcrs"),
        ("debugregs", "struct kvm_debugregs *", "hv_vcpu_get_debugregs", "hv_vcpu_set_debugregs"),
        ("lapic", "struct kvm_lapic_state *", "hv_vcpu_get_lapic", "hv_vcpu_set_lapic"),
    )

    def get_msrs(self, indices: list[int]) -> list[tuple[int, int]]:
        """(index, value) of each MSR KVM lets us read; it stops at the first it refuses: skip that one."""
        out, todo = [], list(indices)
        while todo:
            msrs, _buf = self._msrs([(i, 0) for i in todo])
            got = check(lib.hv_vcpu_get_msrs(self.ptr, msrs))
            out += [(msrs.entries[k].index, msrs.entries[k].data) for k in range(got)]
            todo = todo[got + 1:]
        return out

    def set_msrs(self, pairs: list[tuple[int, int]]) -> None:
        msrs, _buf = self._msrs(pairs)
        done = check(lib.hv_vcpu_set_msrs(self.ptr, msrs))
        if done < len(pairs):
            index, value = pairs[done]
            raise KvmError("KVM_SET_MSRS", errno.EINVAL, f"MSR {index:#x} refused the value {value:#x}")

    @staticmethod
    def _msrs(pairs):
        """A struct kvm_msrs holding pairs, and the buffer that owns it (keep both alive)."""
        msrs, buf = _flexible("struct kvm_msrs", "struct kvm_msr_entry", len(pairs))
        msrs.nmsrs = len(pairs)
        for k, (index, value) in enumerate(pairs):
            msrs.entries[k].index, msrs.entries[k].data = index, value
        return msrs, buf

    def save(self) -> dict:
        """Every piece of vCPU state KVM exposes, as raw structs (bytes), MSRs and MP state.
        The vCPU must not be running; a half-done I/O exit is completed first."""
        check(lib.hv_vcpu_complete_io(self.ptr))
        state = {}
        for name, ctype, get, _ in self._BLOBS:
            s = ffi.new(ctype)
            check(getattr(lib, get)(self.ptr, s))
            state[name] = bytes(ffi.buffer(s))
        size = self.vm.kvm.xsave_size
        if size:
            buf = ffi.new("char[]", size)
            check(lib.hv_vcpu_get_xsave(self.ptr, buf, size))
            state["xsave"] = bytes(ffi.buffer(buf, size))
        events = ffi.new("struct kvm_vcpu_events *")
        check(lib.hv_vcpu_get_events(self.ptr, events))
        state["events"] = bytes(ffi.buffer(events))
        state["msrs"] = self.get_msrs(self.vm.kvm.msr_index_list())
        state["mp_state"] = self.get_mp_state()
        return state

    def restore(self, state: dict) -> None:
        """Put back what save() returned, on a vCPU whose CPUID is already set."""
        for name, ctype, _, set_ in self._BLOBS:
            check(getattr(lib, set_)(self.ptr, _struct(ctype, state[name])))
        if "xsave" in state:
            blob = state["xsave"]
            if len(blob) != self.vm.kvm.xsave_size:
                raise ValueError(f"xsave: {len(blob)} bytes saved, {self.vm.kvm.xsave_size} expected")
            buf = ffi.new("char[]", blob)
            check(lib.hv_vcpu_set_xsave(self.ptr, buf, len(blob)))
        self.set_msrs(state["msrs"])
        self.set_mp_state(state["mp_state"])
        check(lib.hv_vcpu_set_events(self.ptr, _struct("struct kvm_vcpu_events *", state["events"])))

    def destroy(self) -> None:
        if self.ptr is not None:
            lib.hv_vcpu_destroy(self.ptr)
            self.ptr = None
