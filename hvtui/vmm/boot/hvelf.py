"""The tiny guests' own boot ABI (guests/lib/hvboot.h): an ELF64 x86-64 executable linked
at 1 MiB, every vCPU entered in 64-bit long mode with rdi = its struct hv_boot_info and
rsp = its own stack. The monitor sets up GDT and identity page tables (cpu.py).

Everything read from the file is checked before it is written: class, machine and type,
and every PT_LOAD segment's address and size against guest RAM and the regions the
monitor keeps for itself.
"""
from __future__ import annotations

from hvtui.errors import ImageError
from hvtui.vmm import cpu, layout
from hvtui.vmm.boot import Boot, BootContext, Entry, elf

NAME = "hvtui ELF64"
PC = False


def accepts(image: bytes) -> bool:
    """Any ELF (the last protocol tried: an ELF no other protocol took gets its errors)."""
    return elf.is_elf(image)


def load(ctx: BootContext) -> Boot:
    if ctx.image[4:5] != b"\x02":
        raise ImageError(f"{ctx.kernel_path}: a 32-bit ELF with no Multiboot header or PVH note: "
                         "hvtui cannot tell how to boot it")
    image = elf.parse(ctx.kernel_path, ctx.image)
    if ctx.modules:
        raise ImageError(f"{ctx.kernel_path}: a tiny hvtui guest takes no initrd or modules")
    usable_end = layout.free_end(ctx.low_end, ctx.vcpus)
    need = image.end + ctx.vcpus * layout.STACK_SIZE            # the image, then a stack per vCPU
    if image.start >= layout.IMAGE_BASE and image.end <= ctx.low_end and need > ctx.low_end:
        raise ImageError(f"{ctx.kernel_path}: {ctx.vcpus} vCPU(s) need {ctx.vcpus * layout.STACK_SIZE >> 10} KiB "
                         f"of stacks above the kernel (which ends at {image.end:#x}): give the guest at least "
                         f"{-(-need // layout.MiB)} MiB")
    elf.check_segments(ctx.kernel_path, image, layout.IMAGE_BASE, max(usable_end, layout.IMAGE_BASE))
    if not any(s.paddr <= image.entry < s.paddr + s.memsz for s in image.segments):
        raise ImageError(f"{ctx.kernel_path}: entry point {image.entry:#x} is outside its segments")
    elf.write_segments(ctx.memory, image.segments)
    end = (image.end + 4095) & ~4095
    cpu.write_tables(ctx.memory, ctx.ram_size)
    cmdline = ctx.cmdline.encode()
    ctx.memory.write(layout.CMDLINE_ADDR, cmdline + b"\0")
    entries = []
    for i in range(ctx.vcpus):
        info_addr = layout.BOOT_INFO_ADDR + i * layout.BOOT_INFO_STRIDE
        ctx.memory.write(info_addr, layout.BOOT_INFO.pack(
            layout.BOOT_MAGIC, layout.BOOT_VERSION, i, ctx.vcpus, ctx.ram_size, ctx.low_end, ctx.high_size,
            end, usable_end, ctx.tsc_khz, layout.CMDLINE_ADDR, len(cmdline), 0))
        entries.append(Entry("long64", image.entry, {"rdi": info_addr, "rsp": layout.stack_top(ctx.low_end, i)}))
    return Boot(NAME, entries, pc=False, load_start=image.start, load_end=end)
