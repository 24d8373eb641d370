"""The Linux x86 boot protocol (Documentation/arch/x86/boot.rst), version 2.06 or later,
through its 64-bit entry: the setup header is copied into a zeroed boot_params (the zero
page) with the loader's fields filled in, the protected-mode kernel placed as
pref_address / kernel_alignment / relocatable_kernel say, the initrd at the top of low
RAM under initrd_addr_max, the e820 map the real layout, and screen_info the text mode
the BIOS data area describes (screeninfo.py; with it `console=tty0` puts Linux's console
on the VGA screen). The vCPU starts in 64-bit mode at the load address + 0x200 with an
identity map, RSI = boot_params and the GDT selectors __BOOT_CS (0x10) and __BOOT_DS (0x18).
"""
from __future__ import annotations

import struct

from hvtui.errors import ImageError
from hvtui.vmm import cpu
from hvtui.vmm.boot import Boot, BootContext, Entry, linux, pc, screeninfo

NAME = "Linux bzImage"
PC = True
HDRS = b"HdrS"
MIN_VERSION = 0x0206
BOOT_PARAMS_ADDR = 0x7000
CMDLINE_ADDR = 0x3000
CMDLINE_ROOM = 0x4000            # 0x3000-0x6fff: between the tiny GDT page and boot_params
LOADER_TYPE = 0xFF               # "undefined" boot loader: hvtui has no assigned ID
LOADED_HIGH, CAN_USE_HEAP = 0x01, 0x80
XLF_KERNEL_64 = 0x01
E820_MAX = 128
ENTRY_64_OFFSET = 0x200


def accepts(image: bytes) -> bool:
    return len(image) >= 0x206 and image[0x202:0x206] == HDRS


def _u(image: bytes, fmt: str, off: int) -> int:
    return struct.unpack_from("<" + fmt, image, off)[0]


def placement(path: str, image: bytes, version: int, kernel_size: int, low_end: int) -> tuple[int, int]:
    """(load address, bytes the kernel needs from there) as the header asks."""
    init_size = _u(image, "I", 0x260) if version >= 0x020A else 0
    need = max(init_size, kernel_size)
    pref = _u(image, "Q", 0x258) if version >= 0x020A else pc.HIGH_MEMORY
    align = _u(image, "I", 0x230) or 0x200000
    if align & (align - 1):
        raise ImageError(f"{path}: kernel_alignment {align:#x} is not a power of two")
    relocatable = image[0x234] if version >= 0x0205 else 0
    addr = pref
    if relocatable and (addr & (align - 1) or addr < pc.HIGH_MEMORY or addr + need > low_end):
        addr = pc.align_up(max(pc.HIGH_MEMORY, align), align)
    if addr < pc.HIGH_MEMORY or addr + need > low_end:
        raise ImageError(f"{path}: the kernel needs {need >> 20} MiB at {addr:#x}, beyond the guest's "
                         f"{low_end >> 20} MiB of low RAM; give the guest more memory")
    return addr, need


def load(ctx: BootContext) -> Boot:
    path, image = ctx.kernel_path, ctx.image
    if len(image) < 0x268:
        raise ImageError(f"{path}: truncated Linux setup header ({len(image)} bytes)")
    version = _u(image, "H", 0x206)
    if version < MIN_VERSION:
        raise ImageError(f"{path}: Linux boot protocol {version >> 8}.{version & 0xff:02d} is older than 2.06, "
                         "which hvtui needs")
    if _u(image, "H", 0x1FE) != 0xAA55:
        raise ImageError(f"{path}: Linux boot sector signature 0xAA55 missing")
    if not image[0x236] & XLF_KERNEL_64:
        raise ImageError(f"{path}: this kernel has no 64-bit entry point (xloadflags XLF_KERNEL_64), "
                         "which hvtui boots through")
    if not image[0x211] & LOADED_HIGH:
        raise ImageError(f"{path}: a zImage (loaded low) kernel; hvtui boots bzImages only")
    setup_sects = image[0x1F1] or 4
    kernel_off = (setup_sects + 1) * 512
    syssize = _u(image, "I", 0x1F4) * 16
    if kernel_off >= len(image) or (syssize and kernel_off + syssize > len(image) + 15):
        raise ImageError(f"{path}: truncated bzImage: setup_sects/syssize say {kernel_off + syssize} bytes, "
                         f"the file has {len(image)}")
    kernel = image[kernel_off:]
    header_end = 0x202 + image[0x201]
    if header_end > kernel_off:
        raise ImageError(f"{path}: the setup header runs past the setup sectors")
    cmdline_size = _u(image, "I", 0x238) if version >= 0x0206 else 255
    cmdline = linux.cmdline(ctx, min(cmdline_size, CMDLINE_ROOM - 1))
    load_addr, need = placement(path, image, version, len(kernel), ctx.low_end)
    placer = pc.Placer(path, load_addr, load_addr + need, ctx.low_end)
    initrd_size = linux.initrd_size(ctx)
    initrd_max = _u(image, "I", 0x22C) or 0x37FFFFFF
    initrd_addr = linux.place_initrd(ctx, placer, initrd_size, initrd_max + 1)
    mmap = pc.memory_map(ctx.ram_size)

    params = bytearray(4096)
    params[:screeninfo.SIZE] = screeninfo.from_bios_data(ctx.memory)     # vgacon's 80x25 text mode
    params[0x1F1:header_end] = image[0x1F1:header_end]
    params[0x210] = LOADER_TYPE
    params[0x211] |= CAN_USE_HEAP
    struct.pack_into("<H", params, 0x224, 0xFE00 - 0x200)          # heap_end_ptr
    struct.pack_into("<I", params, 0x228, CMDLINE_ADDR)
    struct.pack_into("<II", params, 0x218, initrd_addr, initrd_size)
    struct.pack_into("<I", params, 0x214, load_addr)               # code32_start
    params[0x1E8] = len(mmap)
    for i, (base, length, typ) in enumerate(mmap[:E820_MAX]):
        struct.pack_into("<QQI", params, 0x2D0 + 20 * i, base, length, typ)

    ctx.memory.write(load_addr, kernel)
    ctx.memory.write(CMDLINE_ADDR, cmdline)
    if initrd_size:
        linux.write_initrd(ctx, initrd_addr)
    ctx.memory.write(BOOT_PARAMS_ADDR, bytes(params))
    cpu.write_page_tables(ctx.memory, ctx.ram_size)
    return Boot(NAME, [Entry("long64", load_addr + ENTRY_64_OFFSET, {"rsi": BOOT_PARAMS_ADDR})],
                load_start=load_addr, load_end=load_addr + need)
