"""PVH boot (Xen's x86/HVM direct boot ABI, which Linux, FreeBSD and QEMU's microvm use):
an ELF kernel, 32- or 64-bit, with the XEN_ELFNOTE_PHYS32_ENTRY note giving a 32-bit
entry point. Loaded by its program headers' physical addresses and entered in 32-bit
protected mode, paging off, EBX = a struct hvm_start_info (version 1) with its memory map,
command line, the RSDP and the initrd as module 0. The start info sits after the kernel
image; the initrd at the top of low RAM. hvm_start_info has no video information (Linux's
PVH entry leaves screen_info zero), so Linux booted this way keeps its dummy console and
shows on COM1 only; a bzImage gets the VGA text console (screeninfo.py).
"""
from __future__ import annotations

import struct

from hvtui.errors import ImageError
from hvtui.vmm.boot import Boot, BootContext, Entry, elf, linux, pc

NAME = "PVH"
PC = True
XEN_NOTE = "Xen"
XEN_ELFNOTE_PHYS32_ENTRY = 18
START_INFO_MAGIC = 0x336EC578
START_INFO = struct.Struct("<IIIIQQQQII")     # magic, version, flags, nr_modules, modlist, cmdline,
                                              # rsdp, memmap, memmap_entries, reserved
CMDLINE_MAX = 4095
INITRD_LIMIT = 1 << 32


def entry_note(notes: list[tuple[str, int, bytes]]) -> int | None:
    for name, typ, desc in notes:
        if name == XEN_NOTE and typ == XEN_ELFNOTE_PHYS32_ENTRY and len(desc) in (4, 8):
            return int.from_bytes(desc, "little")
    return None


def _has_note(image: bytes) -> bool:
    """A quick look for the note's bytes before parsing the ELF (the tiny guests have none)."""
    return b"Xen\0" in image and elf.is_elf(image)


def accepts(image: bytes) -> bool:
    return _has_note(image) and entry_note(elf.notes(image)) is not None


def load(ctx: BootContext) -> Boot:
    path = ctx.kernel_path
    image = elf.parse(path, ctx.image)
    entry = entry_note(image.notes)
    elf.check_segments(path, image, pc.HIGH_MEMORY, ctx.low_end)
    if not image.start <= entry < image.end:
        raise ImageError(f"{path}: the PVH entry point {entry:#x} is outside the loaded image")
    placer = pc.Placer(path, image.start, image.end, ctx.low_end)
    cmdline = linux.cmdline(ctx, CMDLINE_MAX)
    initrd_size = linux.initrd_size(ctx)
    initrd_addr = linux.place_initrd(ctx, placer, initrd_size, INITRD_LIMIT)
    mmap = pc.memory_map(ctx.ram_size)
    mmap_blob = b"".join(struct.pack("<QQII", b, n, t, 0) for b, n, t in mmap)
    info_addr = placer.below(START_INFO.size, 8, "the PVH start info")
    mmap_addr = placer.below(len(mmap_blob), 8, "the memory map")
    cmdline_addr = placer.below(len(cmdline), 8, "the command line")
    modlist_addr = placer.below(32, 8, "the module list")

    elf.write_segments(ctx.memory, image.segments)
    if initrd_size:
        linux.write_initrd(ctx, initrd_addr)
        ctx.memory.write(modlist_addr, struct.pack("<QQQQ", initrd_addr, initrd_size, 0, 0))
    ctx.memory.write(mmap_addr, mmap_blob)
    ctx.memory.write(cmdline_addr, cmdline)
    ctx.memory.write(info_addr, START_INFO.pack(
        START_INFO_MAGIC, 1, 0, 1 if initrd_size else 0, modlist_addr if initrd_size else 0, cmdline_addr,
        pc.ACPI_ADDR, mmap_addr, len(mmap), 0))
    return Boot(NAME, [Entry("protected32", entry, {"rbx": info_addr})],
                load_start=image.start, load_end=image.end)
