"""The PC that real kernels expect, as a memory map: where RAM is, what the monitor keeps
for itself (BIOS data, EBDA, the firmware tables in the BIOS area, the MMIO hole), where
boot data may go, and the legacy values firmware leaves in the BIOS data area.

Low memory of a PC guest (every protocol but the tiny guests' own):
    0x00000-0x9fbff  RAM (page 0 holds the BIOS data area; kernels put AP trampolines low)
    0x9fc00-0x9ffff  reserved: the EBDA
    0xa0000-0xdffff  not RAM in the map (VGA window, option ROMs)
    0xe0000-0xfffff  reserved: ACPI tables at 0xe0000, MP table at 0xf0000, boot GDT at 0xfe000
    0x100000-        RAM up to the MMIO hole (3-4 GiB, reserved), then RAM from 4 GiB
"""
from __future__ import annotations

import struct

from hvtui.errors import ImageError
from hvtui.vmm import cpu, layout

E820_RAM, E820_RESERVED = 1, 2
EBDA_ADDR = 0x9FC00
BIOS_AREA = (0xE0000, 0x100000)
ACPI_ADDR = 0xE0000
MPTABLE_ADDR = 0xF0000
GDT_ADDR = 0xFE000
HIGH_MEMORY = 0x100000
PAGE = 4096

# The boot GDT: 0x10 and 0x18 are Linux's __BOOT_CS / __BOOT_DS for its 64-bit entry;
# 0x20 is the flat 32-bit code segment of the protected-mode entries (Multiboot, PVH).
GDT = [
    0,
    0,
    0x00AF9B000000FFFF,   # 0x10 code64
    0x00CF93000000FFFF,   # 0x18 data, flat 4 GiB
    0x00CF9B000000FFFF,   # 0x20 code32, flat 4 GiB
]
GDT_LONG = cpu.Gdt(GDT_ADDR, len(GDT), code=0x10, data=0x18)
GDT_PROTECTED = cpu.Gdt(GDT_ADDR, len(GDT), code=0x20, data=0x18)


def memory_map(ram_size: int) -> list[tuple[int, int, int]]:
    """(base, length, type) of every range, in address order: the e820 map of the guest."""
    low, high = layout.split_ram(ram_size)
    hole_start, hole_end = layout.MMIO_HOLE
    entries = [
        (0, EBDA_ADDR, E820_RAM),
        (EBDA_ADDR, 0xA0000 - EBDA_ADDR, E820_RESERVED),
        (BIOS_AREA[0], BIOS_AREA[1] - BIOS_AREA[0], E820_RESERVED),
        (HIGH_MEMORY, low - HIGH_MEMORY, E820_RAM),
        (hole_start, hole_end - hole_start, E820_RESERVED),
    ]
    if high:
        entries.append((layout.HIGH_RAM_START, high, E820_RAM))
    return entries


def mem_lower_upper_kib(ram_size: int) -> tuple[int, int]:
    """Multiboot's mem_lower (KiB below 640 KiB) and mem_upper (KiB from 1 MiB to the first hole)."""
    low, _ = layout.split_ram(ram_size)
    return EBDA_ADDR // 1024, (low - HIGH_MEMORY) // 1024


def align_up(value: int, align: int) -> int:
    return (value + align - 1) & ~(align - 1)


class Placer:
    """Boot data placed in usable low RAM around the kernel: bump allocation upward from
    the end of the image (info structures), and top-down from the end of low RAM (initrds
    and modules). Anything that does not fit is one ImageError line."""

    def __init__(self, path: str, image_start: int, image_end: int, low_end: int):
        self.path = path
        self.image = (image_start, image_end)
        self.low = align_up(image_end, PAGE)
        self.high = low_end & ~(PAGE - 1)

    def below(self, size: int, align: int = 8, what: str = "boot data") -> int:
        addr = align_up(self.low, align)
        if addr + size > self.high:
            raise ImageError(f"{self.path}: {what} ({size} bytes) does not fit in guest RAM after the kernel; "
                             "give the guest more memory")
        self.low = addr + size
        return addr

    def top(self, size: int, limit: int, what: str) -> int:
        """Highest page-aligned place under min(limit, what is left) for size bytes."""
        end = min(self.high, limit)
        addr = (end - size) & ~(PAGE - 1)
        if size > end or addr < max(self.low, HIGH_MEMORY):
            raise ImageError(f"{self.path}: {what} ({size} bytes) does not fit in guest RAM beside the "
                             f"kernel; give the guest more memory")
        self.high = addr
        return addr


def check_load_range(path: str, start: int, end: int, low_end: int, what: str = "the kernel") -> None:
    """A kernel's load range must lie in usable RAM above 1 MiB and below the MMIO hole."""
    if start < HIGH_MEMORY or end > low_end or end <= start:
        raise ImageError(f"{path}: {what} at {start:#x}..{end:#x} lies outside the guest's usable RAM "
                         f"({HIGH_MEMORY:#x}..{low_end:#x}); give the guest more memory or relink it")


def write_bios_data(memory) -> None:
    """The BIOS data area words kernels read: the EBDA segment and the base memory size,
    and the text-mode display's (devices/vga.py, which also blanks the text window)."""
    from hvtui.vmm.devices import vga
    memory.write(0x40E, struct.pack("<H", EBDA_ADDR >> 4))
    memory.write(0x413, struct.pack("<H", EBDA_ADDR // 1024))
    vga.write_bios_data(memory)


def write_firmware(memory, vcpus: int) -> int:
    """BIOS data, the boot GDT, the MP table and the ACPI tables; returns the RSDP's address."""
    from hvtui.vmm.firmware import acpi, mptable
    write_bios_data(memory)
    memory.write(GDT_ADDR, struct.pack(f"<{len(GDT)}Q", *GDT))
    memory.write(MPTABLE_ADDR, mptable.build(MPTABLE_ADDR, vcpus))
    blob, rsdp = acpi.build(ACPI_ADDR, vcpus)
    memory.write(ACPI_ADDR, blob)
    return rsdp


def rsdp_bytes(memory) -> bytes:
    """The ACPI 2.0 RSDP (36 bytes) written by write_firmware."""
    return memory.read(ACPI_ADDR, 36)
