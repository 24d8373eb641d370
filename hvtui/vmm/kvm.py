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
            # kvm_cpuid2 ends in a flexible array: allocate it with room for n entries
            buf = ffi.new("char[]", ffi.sizeof("struct kvm_cpuid2") + n * ffi.sizeof("struct kvm_cpuid_entry2"))
            cpuid = ffi.cast("struct kvm_cpuid2 *", buf)
            cpuid.nent = n
            check(lib.hv_kvm_get_supported_cpuid(self.fd, cpuid))
            self._cpuid = [
                (e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx)
                for e in (cpuid.entries[i] for i in range(cpuid.nent))
            ]
        return self._cpuid

    def msr_index_list(self) -> list[int]:
        n = 1024
        buf = ffi.new("char[]", ffi.sizeof("struct kvm_msr_list") + 4 * n)
        lst = ffi.cast("struct kvm_msr_list *", buf)
        lst.nmsrs = n
        check(lib.hv_kvm_get_msr_index_list(self.fd, lst))
        return [lst.indices[i] for i in range(lst.nmsrs)]


class Vm:
    """A KVM VM with its in-kernel irqchip and PIT, COM1 and the console ring."""

    def __init__(self, kvm: Kvm):
        self.kvm = kvm
        out = ffi.new("struct hv_vm **")
        check(lib.hv_vm_create(kvm.fd, out))
        self.ptr = out[0]
        self.console_fd = lib.hv_console_fd(self.ptr)
        self._console_buf = ffi.new("uint8_t[]", 65536)

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

    def uart_stats(self) -> dict:
        s = ffi.new("struct hv_uart_stats *")
        lib.hv_uart_get_stats(self.ptr, s)
        return {"tx_bytes": s.tx_bytes, "rx_bytes": s.rx_bytes,
                "rx_overruns": s.rx_overruns, "console_dropped": s.console_dropped}

    def destroy(self) -> None:
        if self.ptr is not None:
            lib.hv_vm_destroy(self.ptr)
            self.ptr = None


class Vcpu:
    """One vCPU: its run loop in C, its state ioctls and its counters."""

    def __init__(self, vm: Vm, index: int):
        self.vm = vm
        self.index = index
        out = ffi.new("struct hv_vcpu **")
        check(lib.hv_vcpu_create(vm.ptr, index, out))
        self.ptr = out[0]
        self.exit = ffi.new("struct hv_exit *")
        self.stats = lib.hv_vcpu_stats(self.ptr)

    def run(self):
        """Run until an exit C does not own; returns the filled struct hv_exit (GIL released)."""
        check(lib.hv_vcpu_run(self.ptr, self.exit))
        return self.exit

    def kick(self) -> None:
        lib.hv_vcpu_kick(self.ptr)

    def clear_request(self) -> None:
        lib.hv_vcpu_clear_request(self.ptr)

    @property
    def thread_id(self) -> int:
        return lib.hv_vcpu_thread_id(self.ptr)

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

    def set_cpuid(self, entries: list[tuple]) -> None:
        buf = ffi.new("char[]", ffi.sizeof("struct kvm_cpuid2") + len(entries) * ffi.sizeof("struct kvm_cpuid_entry2"))
        cpuid = ffi.cast("struct kvm_cpuid2 *", buf)
        cpuid.nent = len(entries)
        for i, (function, index, flags, eax, ebx, ecx, edx) in enumerate(entries):
            e = cpuid.entries[i]
            e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx = function, index, flags, eax, ebx, ecx, edx
        check(lib.hv_vcpu_set_cpuid(self.ptr, cpuid))

    def tsc_khz(self) -> int:
        return check(lib.hv_vcpu_get_tsc_khz(self.ptr))

    def translate(self, linear: int) -> int | None:
        """Guest-virtual to guest-physical through the vCPU's page tables (None if unmapped)."""
        tr = ffi.new("struct kvm_translation *", {"linear_address": linear})
        if lib.hv_vcpu_translate(self.ptr, tr) < 0 or not tr.valid:
            return None
        return tr.physical_address

    def destroy(self) -> None:
        if self.ptr is not None:
            lib.hv_vcpu_destroy(self.ptr)
            self.ptr = None
