"""Multiboot 1 (the Multiboot Specification 0.6.96): the header in the first 8 KiB, the
kernel loaded from its ELF program headers or, with flag 16, from the header's address
fields (the "a.out kludge"); entered in 32-bit protected mode with paging off, EAX =
0x2BADB002 and EBX = the multiboot_info. The info, the memory map, the strings and the
modules are placed after the kernel image, so they collide neither with it nor with page 0
(where kernels put their AP trampoline). The kernel's command line is `KERNEL-PATH ARGS`,
and each module's string is what the user gave for it, as GRUB and QEMU pass them.
No video information is given (a kernel asking for a graphics mode is refused): a Multiboot
kernel finds the BIOS's 80x25 text mode (the BIOS data area, the window at 0xB8000) and
writes the screen itself.
"""
from __future__ import annotations

import struct

from hvtui.errors import ImageError
from hvtui.vmm.boot import Boot, BootContext, Entry, elf, pc

NAME = "Multiboot 1"
PC = True
MAGIC = 0x1BADB002
BOOTLOADER_MAGIC = 0x2BADB002
SEARCH = 8192
LOADER_NAME = "hvtui"

F_PAGE_ALIGN, F_MEMINFO, F_VIDEO, F_ADDRESS = 1 << 0, 1 << 1, 1 << 2, 1 << 16
KNOWN_REQUIRED = F_PAGE_ALIGN | F_MEMINFO

# multiboot_info.flags
I_MEM, I_CMDLINE, I_MODS, I_MMAP, I_LOADER = 1 << 0, 1 << 2, 1 << 3, 1 << 6, 1 << 9
INFO_SIZE = 120


def find_header(image: bytes) -> int | None:
    """Offset of a valid header (magic, flags and checksum summing to 0) in the first 8 KiB."""
    for off in range(0, min(len(image), SEARCH) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", image, off)
        if magic == MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return off
    return None


def accepts(image: bytes) -> bool:
    return find_header(image) is not None


def check_flags(path: str, flags: int) -> None:
    if flags & F_VIDEO:
        raise ImageError(f"{path}: the Multiboot header requires a graphics mode (flag 2), which hvtui "
                         "cannot give (it has a serial console and VGA text)")
    unknown = flags & 0xFFFF & ~KNOWN_REQUIRED
    if unknown:
        bit = unknown.bit_length() - 1
        raise ImageError(f"{path}: the Multiboot header requires feature flag {bit}, which hvtui does not know")


def aout_segments(path: str, image: bytes, hdr: int, fields: tuple[int, ...]) -> tuple[list[elf.Segment], int]:
    """The a.out kludge: (segments, entry) from header_addr, load_addr, load_end_addr,
    bss_end_addr and entry_addr, checked against the file."""
    header_addr, load_addr, load_end, bss_end, entry = fields
    if load_addr > header_addr:
        raise ImageError(f"{path}: Multiboot load_addr {load_addr:#x} is above header_addr {header_addr:#x}")
    file_off = hdr - (header_addr - load_addr)
    if file_off < 0:
        raise ImageError(f"{path}: Multiboot header_addr/load_addr put the load start before the file's start")
    size = (load_end - load_addr) if load_end else len(image) - file_off
    if size <= 0 or file_off + size > len(image):
        raise ImageError(f"{path}: Multiboot load_end_addr {load_end:#x} is outside the file "
                         f"({len(image) - file_off} bytes from load_addr)")
    memsz = size
    if bss_end:
        if bss_end < load_addr + size:
            raise ImageError(f"{path}: Multiboot bss_end_addr {bss_end:#x} is below the end of the loaded image")
        memsz = bss_end - load_addr
    if not load_addr <= entry < load_addr + memsz:
        raise ImageError(f"{path}: Multiboot entry_addr {entry:#x} is outside the loaded image")
    return [elf.Segment(load_addr, memsz, memoryview(image)[file_off:file_off + size])], entry


def kernel_segments(path: str, image: bytes, hdr: int, flags: int) -> tuple[list[elf.Segment], int]:
    if flags & F_ADDRESS:
        if hdr + 32 > len(image):
            raise ImageError(f"{path}: Multiboot header truncated (address fields missing)")
        return aout_segments(path, image, hdr, struct.unpack_from("<5I", image, hdr + 12))
    if not elf.is_elf(image):
        raise ImageError(f"{path}: Multiboot header without address fields (flag 16) and not an ELF file")
    e = elf.parse(path, image)
    if e.end > 1 << 32 or e.entry >= 1 << 32:
        raise ImageError(f"{path}: a Multiboot kernel must load and start below 4 GiB")
    return e.segments, e.entry


def load_kernel(ctx: BootContext, segments: list[elf.Segment], entry: int) -> tuple[int, int]:
    """Check then write the kernel's segments; returns (start, end) of the image."""
    image = elf.ElfImage(32, entry, segments, [])
    elf.check_segments(ctx.kernel_path, image, pc.HIGH_MEMORY, ctx.low_end)
    if not any(s.paddr <= entry < s.paddr + s.memsz for s in segments):
        raise ImageError(f"{ctx.kernel_path}: entry point {entry:#x} is outside the loaded image")
    return image.start, image.end


def kernel_cmdline(ctx: BootContext) -> bytes:
    """What GRUB and QEMU pass: the kernel's path, then its arguments."""
    return (ctx.kernel_path + (" " + ctx.cmdline if ctx.cmdline else "")).encode() + b"\0"


def place_modules(ctx: BootContext, placer: pc.Placer) -> list[tuple[int, int, int]]:
    """(start, end, string address) of each module, page aligned, module 0 first."""
    out = []
    for m in ctx.modules:
        start = placer.below(max(m.size, 1), pc.PAGE, f"module {m.path}")
        string = placer.below(len(m.string) + 1, 1, "a module string")
        out.append((start, start + m.size, string))
    return out


def load(ctx: BootContext) -> Boot:
    path, image = ctx.kernel_path, ctx.image
    hdr = find_header(image)
    flags = struct.unpack_from("<I", image, hdr + 4)[0]
    check_flags(path, flags)
    segments, entry = kernel_segments(path, image, hdr, flags)
    start, end = load_kernel(ctx, segments, entry)

    placer = pc.Placer(path, start, end, ctx.low_end)
    mods = place_modules(ctx, placer)
    mmap = pc.memory_map(ctx.ram_size)
    cmdline = kernel_cmdline(ctx)
    loader = LOADER_NAME.encode() + b"\0"
    mmap_addr = placer.below(24 * len(mmap), 8, "the memory map")
    mods_addr = placer.below(16 * max(len(mods), 1), 8, "the module list")
    cmdline_addr = placer.below(len(cmdline), 1, "the command line")
    loader_addr = placer.below(len(loader), 1, "the boot loader name")
    info_addr = placer.below(INFO_SIZE, 8, "the multiboot_info")

    elf.write_segments(ctx.memory, segments)
    for m, (mstart, _, string) in zip(ctx.modules, mods):
        m.copy_to(ctx.memory, mstart)
        ctx.memory.write(string, m.string.encode() + b"\0")
    ctx.memory.write(mods_addr, b"".join(struct.pack("<4I", s, e, a, 0) for s, e, a in mods))
    ctx.memory.write(mmap_addr, b"".join(struct.pack("<IQQI", 20, b, n, t) for b, n, t in mmap))
    ctx.memory.write(cmdline_addr, cmdline)
    ctx.memory.write(loader_addr, loader)
    lower, upper = pc.mem_lower_upper_kib(ctx.ram_size)
    info = bytearray(INFO_SIZE)
    struct.pack_into("<III", info, 0, I_MEM | I_CMDLINE | I_MODS | I_MMAP | I_LOADER, lower, upper)
    struct.pack_into("<III", info, 16, cmdline_addr, len(mods), mods_addr)
    struct.pack_into("<II", info, 44, 24 * len(mmap), mmap_addr)
    struct.pack_into("<I", info, 64, loader_addr)
    ctx.memory.write(info_addr, bytes(info))
    return Boot(NAME, [Entry("protected32", entry, {"rax": BOOTLOADER_MAGIC, "rbx": info_addr})],
                load_start=start, load_end=end)
