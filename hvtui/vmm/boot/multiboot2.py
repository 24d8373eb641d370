"""Multiboot 2 (Multiboot Specification 2.0): the header (8-byte aligned, in the first
32 KiB) and its tags say how to load the kernel; the boot information is a list of tags.
hvtui gives: command line (1), boot loader name (2), modules (3), basic memory (4), the
memory map (6) and the ACPI RSDPs (14, 15). A tag the kernel requires and hvtui cannot
give (a framebuffer, EFI) is refused by name. Entry as Multiboot 1: 32-bit protected mode,
paging off, EAX = 0x36D76289, EBX = the information; placed after the kernel image. As
with Multiboot 1, the kernel writes the 80x25 text window at 0xB8000 itself.
"""
from __future__ import annotations

import struct

from hvtui.errors import ImageError
from hvtui.vmm.boot import Boot, BootContext, Entry, elf, multiboot1, pc

NAME = "Multiboot 2"
PC = True
MAGIC = 0xE85250D6
BOOTLOADER_MAGIC = 0x36D76289
SEARCH = 32768

# header tags
H_END, H_INFO_REQUEST, H_ADDRESS, H_ENTRY, H_CONSOLE, H_FRAMEBUFFER, H_MODULE_ALIGN = 0, 1, 2, 3, 4, 5, 6
H_EFI_BS, H_ENTRY_EFI32, H_ENTRY_EFI64, H_RELOCATABLE = 7, 8, 9, 10
HEADER_TAG_NAMES = {H_FRAMEBUFFER: "a framebuffer (header tag 5)", H_EFI_BS: "EFI boot services (header tag 7)",
                    H_ENTRY_EFI32: "an EFI i386 entry (header tag 8)", H_ENTRY_EFI64: "an EFI amd64 entry (header tag 9)"}
OPTIONAL = 1

# information tags
I_END, I_CMDLINE, I_LOADER, I_MODULE, I_MEMINFO, I_MMAP, I_ACPI_OLD, I_ACPI_NEW = 0, 1, 2, 3, 4, 6, 14, 15
GIVEN = {I_CMDLINE, I_LOADER, I_MODULE, I_MEMINFO, I_MMAP, I_ACPI_OLD, I_ACPI_NEW}
INFO_TAG_NAMES = {5: "the BIOS boot device", 7: "VBE information", 8: "framebuffer information",
                  9: "ELF section headers", 10: "an APM table", 11: "the EFI 32-bit system table",
                  12: "the EFI 64-bit system table", 13: "SMBIOS tables", 16: "networking information",
                  17: "the EFI memory map", 18: "EFI boot services", 19: "the EFI 32-bit image handle",
                  20: "the EFI 64-bit image handle", 21: "the image load base address"}


def find_header(image: bytes) -> int | None:
    for off in range(0, min(len(image), SEARCH) - 15, 8):
        magic, arch, length, checksum = struct.unpack_from("<IIII", image, off)
        if magic == MAGIC and (magic + arch + length + checksum) & 0xFFFFFFFF == 0:
            return off
    return None


def accepts(image: bytes) -> bool:
    return find_header(image) is not None


def header_tags(path: str, image: bytes, hdr: int) -> list[tuple[int, int, bytes]]:
    """(type, flags, body) of each header tag, up to the end tag, checked against header_length."""
    arch, length = struct.unpack_from("<II", image, hdr + 4)
    if arch != 0:
        raise ImageError(f"{path}: Multiboot 2 header for architecture {arch}, not i386 (0)")
    end = hdr + length
    if length < 24:
        raise ImageError(f"{path}: Multiboot 2 header_length {length} leaves no room for the end tag")
    if end > len(image):
        raise ImageError(f"{path}: Multiboot 2 header_length {length} is outside the file")
    tags, off = [], hdr + 16
    while True:
        if off + 8 > end:
            raise ImageError(f"{path}: Multiboot 2 header has no end tag within its header_length")
        typ, flags, size = struct.unpack_from("<HHI", image, off)
        if size < 8 or off + size > end:
            raise ImageError(f"{path}: Multiboot 2 header tag {typ} has a bad size {size}")
        if typ == H_END:
            return tags
        tags.append((typ, flags, image[off + 8:off + size]))
        off += (size + 7) & ~7


def check_tags(path: str, tags) -> None:
    for typ, flags, body in tags:
        required = not flags & OPTIONAL
        if typ == H_INFO_REQUEST and required:
            for want in struct.unpack(f"<{len(body) // 4}I", body[:len(body) // 4 * 4]):
                if want not in GIVEN:
                    what = INFO_TAG_NAMES.get(want, f"information tag {want}")
                    raise ImageError(f"{path}: the Multiboot 2 kernel requires {what}, which hvtui cannot give")
        elif typ in HEADER_TAG_NAMES and required:
            raise ImageError(f"{path}: the Multiboot 2 kernel requires {HEADER_TAG_NAMES[typ]}, "
                             "which hvtui cannot give")
        elif typ not in (H_INFO_REQUEST, H_ADDRESS, H_ENTRY, H_CONSOLE, H_MODULE_ALIGN, H_RELOCATABLE,
                         *HEADER_TAG_NAMES) and required:
            raise ImageError(f"{path}: the Multiboot 2 header has a required tag {typ} that hvtui does not know")


def kernel_segments(path: str, image: bytes, hdr: int, tags) -> tuple[list[elf.Segment], int]:
    by_type = {typ: body for typ, _, body in tags}
    if H_ADDRESS in by_type:
        if len(by_type[H_ADDRESS]) < 16 or H_ENTRY not in by_type or len(by_type[H_ENTRY]) < 4:
            raise ImageError(f"{path}: Multiboot 2 address tag without a valid entry address tag")
        fields = struct.unpack_from("<4I", by_type[H_ADDRESS]) + struct.unpack_from("<I", by_type[H_ENTRY])
        return multiboot1.aout_segments(path, image, hdr, fields)
    if not elf.is_elf(image):
        raise ImageError(f"{path}: Multiboot 2 header without an address tag and not an ELF file")
    e = elf.parse(path, image)
    entry = e.entry
    if H_ENTRY in by_type and len(by_type[H_ENTRY]) >= 4:
        entry = struct.unpack_from("<I", by_type[H_ENTRY])[0]
    if e.end > 1 << 32 or entry >= 1 << 32:
        raise ImageError(f"{path}: a Multiboot 2 kernel must load and start below 4 GiB")
    return e.segments, entry


def _tag(typ: int, body: bytes) -> bytes:
    raw = struct.pack("<II", typ, 8 + len(body)) + body
    return raw + bytes(-len(raw) % 8)


def info_tags(ctx: BootContext, cmdline: bytes, mods, rsdp: bytes) -> bytes:
    lower, upper = pc.mem_lower_upper_kib(ctx.ram_size)
    mmap = pc.memory_map(ctx.ram_size)
    tags = [_tag(I_CMDLINE, cmdline),
            _tag(I_LOADER, multiboot1.LOADER_NAME.encode() + b"\0"),
            _tag(I_MEMINFO, struct.pack("<II", lower, upper)),
            _tag(I_MMAP, struct.pack("<II", 24, 0) + b"".join(struct.pack("<QQII", b, n, t, 0) for b, n, t in mmap))]
    for m, (start, end) in zip(ctx.modules, mods):
        tags.append(_tag(I_MODULE, struct.pack("<II", start, end) + m.string.encode() + b"\0"))
    if rsdp:
        tags += [_tag(I_ACPI_OLD, rsdp[:20]), _tag(I_ACPI_NEW, rsdp)]
    tags.append(_tag(I_END, b""))
    body = b"".join(tags)
    return struct.pack("<II", 8 + len(body), 0) + body


def load(ctx: BootContext) -> Boot:
    path, image = ctx.kernel_path, ctx.image
    hdr = find_header(image)
    tags = header_tags(path, image, hdr)
    check_tags(path, tags)
    segments, entry = kernel_segments(path, image, hdr, tags)
    start, end = multiboot1.load_kernel(ctx, segments, entry)
    placer = pc.Placer(path, start, end, ctx.low_end)
    mods = []
    for m in ctx.modules:
        mstart = placer.below(max(m.size, 1), pc.PAGE, f"module {m.path}")
        mods.append((mstart, mstart + m.size))
    rsdp = pc.rsdp_bytes(ctx.memory)
    info = info_tags(ctx, multiboot1.kernel_cmdline(ctx), mods, rsdp)
    info_addr = placer.below(len(info), 8, "the Multiboot 2 information")
    elf.write_segments(ctx.memory, segments)
    for m, (mstart, _) in zip(ctx.modules, mods):
        m.copy_to(ctx.memory, mstart)
    ctx.memory.write(info_addr, info)
    return Boot(NAME, [Entry("protected32", entry, {"rax": BOOTLOADER_MAGIC, "rbx": info_addr})],
                load_start=start, load_end=end)
