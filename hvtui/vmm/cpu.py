"""CPU setup: GDT, identity page tables, CPUID, and the entry states boot protocols ask
for: 64-bit long mode (the tiny guests, Linux's 64-bit entry) or 32-bit protected mode with
paging off (Multiboot, PVH); and the local APIC in virtual-wire mode for PC kernels.

The tiny guests' vCPUs all start at their entry point (no INIT/SIPI): CPL 0, interrupts
off, no IDT, rdi = boot info, rsp = the vCPU's own stack (layout.py, guests/lib/hvboot.h).
A PC kernel's boot processor starts as its protocol says; the others wait for INIT/SIPI.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from hvtui.vmm import layout
from hvtui.vmm.memory import GuestMemory

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_AM, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
PTE_PRESENT, PTE_RW, PTE_USER, PTE_HUGE = 1, 2, 4, 0x80
RFLAGS_RESERVED = 0x2


def write_tables(memory: GuestMemory, ram_size: int) -> None:
    """The tiny guests' GDT and an identity map of low guest-physical space."""
    memory.write(layout.GDT_ADDR, struct.pack(f"<{len(layout.GDT)}Q", *layout.GDT))
    write_page_tables(memory, ram_size)


def write_page_tables(memory: GuestMemory, ram_size: int) -> None:
    """An identity map of guest-physical space (at least 4 GiB) with 2 MiB pages."""
    gib = layout.mapped_gib(ram_size)
    if gib > layout.MAX_MAPPED_GIB:
        raise ValueError(f"identity map of {gib} GiB does not fit the layout")
    flags = PTE_PRESENT | PTE_RW | PTE_USER
    memory.write_u64(layout.PML4_ADDR, layout.PDPT_ADDR | flags)
    memory.write(layout.PDPT_ADDR, struct.pack(
        f"<{gib}Q", *[(layout.PD_ADDR + i * 4096) | flags for i in range(gib)]))
    entries = gib * 512
    memory.write(layout.PD_ADDR, struct.pack(
        f"<{entries}Q", *[(i << 21) | flags | PTE_HUGE for i in range(entries)]))


def guest_cpuid(supported: list[tuple], index: int, count: int) -> list[tuple]:
    """KVM's supported CPUID, with this vCPU's APIC ID and the logical CPU count filled in."""
    out = []
    for function, idx, flags, eax, ebx, ecx, edx in supported:
        if function == 1:
            ebx = (ebx & 0x0000FFFF) | (min(count, 255) << 16) | ((index & 0xFF) << 24)
            edx |= 1 << 28 if count > 1 else 0   # HTT: more than one logical CPU
        elif function in (0xB, 0x1F):
            edx = index                           # x2APIC ID
        out.append((function, idx, flags, eax, ebx, ecx, edx))
    return out


def _segment(seg, selector: int, code: bool, long: bool = True) -> None:
    seg.base, seg.limit, seg.selector = 0, 0xFFFFFFFF, selector
    seg.type = 11 if code else 3
    seg.present, seg.dpl, seg.s, seg.g = 1, 0, 1, 1
    seg.l, seg.db = (1, 0) if code and long else (0, 1)
    seg.avl, seg.unusable = 0, 0


@dataclass(frozen=True)
class Gdt:
    """Where the boot GDT is, and its code and data selectors for the entry mode."""
    addr: int
    entries: int
    code: int
    data: int


TINY_GDT = Gdt(layout.GDT_ADDR, len(layout.GDT), 0x08, 0x10)
_GENERAL = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15")


def _set_regs(vcpu, rip: int, values: dict[str, int]) -> None:
    regs = vcpu.get_regs()
    for name in _GENERAL:
        setattr(regs, name, values.get(name, 0))
    regs.rip, regs.rflags = rip, RFLAGS_RESERVED
    vcpu.set_regs(regs)


def _set_segments(sregs, gdt: Gdt, long: bool) -> None:
    sregs.gdt.base, sregs.gdt.limit = gdt.addr, gdt.entries * 8 - 1
    sregs.idt.base, sregs.idt.limit = 0, 0
    _segment(sregs.cs, gdt.code, code=True, long=long)
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        _segment(seg, gdt.data, code=False)


def enter_long_mode(vcpu, entry: int, regs: dict[str, int], gdt: Gdt = TINY_GDT) -> None:
    """64-bit mode at entry, paging on with the identity map at PML4_ADDR, regs as given."""
    sregs = vcpu.get_sregs()
    _set_segments(sregs, gdt, long=True)
    sregs.cr3 = layout.PML4_ADDR
    sregs.cr4 = CR4_PAE
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE
    vcpu.set_sregs(sregs)
    _set_regs(vcpu, entry, regs)


def enter_protected_mode(vcpu, entry: int, regs: dict[str, int], gdt: Gdt) -> None:
    """32-bit protected mode at entry: flat 4 GiB segments, paging off, interrupts off."""
    sregs = vcpu.get_sregs()
    _set_segments(sregs, gdt, long=False)
    sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer = CR0_PE | CR0_ET, 0, 0, 0
    vcpu.set_sregs(sregs)
    _set_regs(vcpu, entry, regs)


APIC_LVT0, APIC_LVT1 = 0x350, 0x360
APIC_MODE_EXTINT, APIC_MODE_NMI = 0x700, 0x400


def set_virtual_wire(vcpu) -> None:
    """LINT0 ExtINT and LINT1 NMI, as a PC BIOS leaves the local APIC: the 8259 PIC's
    interrupts (the PIT's included) reach the CPU before the kernel programs the APIC."""
    lapic = vcpu.get_lapic()
    for reg, mode in ((APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)):
        lapic[reg:reg + 4] = mode.to_bytes(4, "little")
    vcpu.set_lapic(lapic)
