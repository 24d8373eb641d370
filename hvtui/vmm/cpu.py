"""CPU setup for the tiny guests: GDT, identity page tables, long mode, CPUID, entry regs.

The monitor enters every vCPU directly in 64-bit long mode at the image's entry point
(no real-mode trampoline, no INIT/SIPI): CPL 0, interrupts off, no IDT, rdi = boot info,
rsp = the vCPU's own stack. See layout.py and guests/lib/hvboot.h.
"""
from __future__ import annotations

import struct

from hvtui._core import lib
from hvtui.vmm import layout
from hvtui.vmm.memory import GuestMemory

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_AM, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 18, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
PTE_PRESENT, PTE_RW, PTE_USER, PTE_HUGE = 1, 2, 4, 0x80
RFLAGS_RESERVED = 0x2


def write_tables(memory: GuestMemory, ram_size: int) -> None:
    """The GDT and an identity map of low guest-physical space with 2 MiB pages."""
    memory.write(layout.GDT_ADDR, struct.pack(f"<{len(layout.GDT)}Q", *layout.GDT))
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


def _segment(seg, selector: int, code: bool) -> None:
    seg.base, seg.limit, seg.selector = 0, 0xFFFFFFFF, selector
    seg.type = 11 if code else 3
    seg.present, seg.dpl, seg.s, seg.g = 1, 0, 1, 1
    seg.l, seg.db = (1, 0) if code else (0, 1)
    seg.avl, seg.unusable = 0, 0


def enter_long_mode(vcpu, entry: int, boot_info: int, stack: int) -> None:
    """Put the vCPU in 64-bit mode at entry with rdi = boot_info and rsp = stack."""
    sregs = vcpu.get_sregs()
    sregs.gdt.base, sregs.gdt.limit = layout.GDT_ADDR, len(layout.GDT) * 8 - 1
    sregs.idt.base, sregs.idt.limit = 0, 0
    _segment(sregs.cs, 0x08, code=True)
    for seg in (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss):
        _segment(seg, 0x10, code=False)
    sregs.cr3 = layout.PML4_ADDR
    sregs.cr4 = CR4_PAE
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG
    sregs.efer = EFER_LME | EFER_LMA | EFER_NXE
    vcpu.set_sregs(sregs)
    regs = vcpu.get_regs()
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rbp", "r8", "r9", "r10", "r11",
                 "r12", "r13", "r14", "r15"):
        setattr(regs, name, 0)
    regs.rip, regs.rdi, regs.rsp, regs.rflags = entry, boot_info, stack, RFLAGS_RESERVED
    vcpu.set_regs(regs)
    if vcpu.index > 0:   # with an in-kernel irqchip, APs wait for SIPI unless told otherwise
        vcpu.set_mp_state(lib.KVM_MP_STATE_RUNNABLE)
