"""Names for KVM exit reasons and a readable crash report from a stopped vCPU."""
from __future__ import annotations

from dataclasses import dataclass, field

KVM_EXIT_NAMES = {
    0: "unknown", 1: "exception", 2: "io", 3: "hypercall", 4: "debug", 5: "hlt", 6: "mmio",
    7: "irq_window_open", 8: "shutdown", 9: "fail_entry", 10: "intr", 11: "set_tpr",
    12: "tpr_access", 17: "internal_error", 18: "osi", 19: "papr_hcall", 23: "watchdog",
    24: "epr", 25: "system_event", 26: "s390_stsi", 27: "ioapic_eoi", 28: "hyperv",
    29: "arm_nisv", 30: "x86_rdmsr", 31: "x86_wrmsr", 32: "dirty_ring_full",
    33: "ap_reset_hold", 34: "x86_bus_lock", 35: "xen", 36: "riscv_sbi", 37: "riscv_csr",
    38: "notify", 39: "loongarch_iocsr", 40: "memory_fault",
}

INTERNAL_SUBERRORS = {
    1: "emulation failure", 2: "simultaneous exceptions", 3: "exception during event delivery",
    4: "unexpected exit reason", 5: "MSR access failure", 6: "unexpected interrupt delivery",
}

REGISTER_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10",
                  "r11", "r12", "r13", "r14", "r15", "rip", "rflags")
SREG_NAMES = ("cr0", "cr2", "cr3", "cr4", "efer")


def exit_name(reason: int) -> str:
    return KVM_EXIT_NAMES.get(reason, f"exit_{reason}")


def register_dump(vcpu) -> dict[str, int]:
    """General, control and segment registers of a vCPU that is not running."""
    regs = vcpu.get_regs()
    sregs = vcpu.get_sregs()
    out = {name: getattr(regs, name) for name in REGISTER_NAMES}
    out.update({name: getattr(sregs, name) for name in SREG_NAMES})
    out["cs"] = sregs.cs.selector
    out["ss"] = sregs.ss.selector
    out["cpl"] = sregs.cs.dpl
    return out


def emulation_bytes(info: list[int], ndata: int) -> bytes:
    """Instruction bytes KVM reports with an emulation failure (flags, size, bytes)."""
    if ndata < 2 or not (info[0] & 1):   # KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
        return b""
    raw = b"".join(int(v).to_bytes(8, "little") for v in info[1:ndata])
    size = min(raw[0], 15)
    return raw[1:1 + size]


@dataclass
class CrashReport:
    reason: str                 # "triple fault", "emulation failure", "bad device access", ...
    detail: str = ""
    vcpu: int = 0
    registers: dict[str, int] = field(default_factory=dict)
    instruction: bytes = b""    # bytes at RIP (or what KVM said it could not emulate)

    def summary(self) -> str:
        s = self.reason
        if self.detail:
            s += f": {self.detail}"
        if "rip" in self.registers:
            s += f" (vcpu {self.vcpu}, rip={self.registers['rip']:#x})"
        return s

    def format(self) -> str:
        lines = [f"crashed: {self.summary()}"]
        if self.instruction:
            lines.append("instruction bytes: " + self.instruction.hex(" "))
        regs = self.registers
        names = [n for n in REGISTER_NAMES + SREG_NAMES if n in regs]
        for i in range(0, len(names), 3):
            lines.append("  ".join(f"{n:>6}={regs[n]:#018x}" for n in names[i:i + 3]))
        if "cs" in regs:
            lines.append(f"    cs={regs['cs']:#06x}      ss={regs['ss']:#06x}     cpl={regs['cpl']}")
        return "\n".join(lines)
