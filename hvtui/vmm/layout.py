"""The guest-physical memory map and the tiny guests' boot ABI, in one place.

guests/lib/hvboot.h carries the same numbers for the guest side; keep them in step.
"""
import struct

MiB = 1 << 20
GiB = 1 << 30

LOW_RAM_LIMIT = 3 * GiB          # RAM below the MMIO hole
HIGH_RAM_START = 4 * GiB         # RAM above 3 GiB of size continues here
MMIO_HOLE = (3 * GiB, 4 * GiB)
VIRTIO_MMIO_BASE = 0xD000_0000   # virtio-mmio devices, 4 KiB each (DESIGN §5)

GDT_ADDR = 0x1000
CMDLINE_ADDR = 0x2000
CMDLINE_MAX = 4095
PML4_ADDR = 0x10000
PDPT_ADDR = 0x11000
PD_ADDR = 0x12000                 # one 4 KiB page directory per GiB mapped
PD_LIMIT = 0x80000                # page directories must end below the boot infos
BOOT_INFO_ADDR = 0x80000
BOOT_INFO_STRIDE = 128
BOOT_INFO_LIMIT = 0xA0000
IMAGE_BASE = 0x100000             # tiny guests are linked at 1 MiB
STACK_SIZE = 64 * 1024

MAX_VCPUS_LAYOUT = (BOOT_INFO_LIMIT - BOOT_INFO_ADDR) // BOOT_INFO_STRIDE   # 1024
MAX_MAPPED_GIB = (PD_LIMIT - PD_ADDR) // 4096                              # 110

BOOT_MAGIC = 0x42545648          # "HVTB"
BOOT_VERSION = 1
# struct hv_boot_info: magic, version, vcpu_index, vcpu_count, ram_size, low_ram_end,
# high_ram_size, free_start, free_end, tsc_khz, cmdline, cmdline_len, reserved
BOOT_INFO = struct.Struct("<IIIIQQQQQQQII")

GDT = [
    0x0000000000000000,  # null
    0x00AF9B000000FFFF,  # 0x08 kernel code64
    0x00CF93000000FFFF,  # 0x10 kernel data
    0x00CFF3000000FFFF,  # 0x18 user data (DPL 3)
    0x00AFFB000000FFFF,  # 0x20 user code64 (DPL 3)
]


def split_ram(ram_size: int) -> tuple[int, int]:
    """(low RAM bytes below the hole, high RAM bytes from 4 GiB)."""
    low = min(ram_size, LOW_RAM_LIMIT)
    return low, ram_size - low


def mapped_gib(ram_size: int) -> int:
    """GiB of guest-physical space the identity map covers: at least 4 (for the MMIO hole)."""
    _, high = split_ram(ram_size)
    top = HIGH_RAM_START + high if high else 4 * GiB
    return max(4, -(-top // GiB))


def stack_top(low_ram_end: int, index: int) -> int:
    return low_ram_end - index * STACK_SIZE


def free_end(low_ram_end: int, vcpus: int) -> int:
    return low_ram_end - vcpus * STACK_SIZE
