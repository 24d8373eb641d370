"""What the Linux-style protocols (bzImage, PVH) share: the command line with the
virtio-mmio devices announced on it, as Firecracker does (kernels built with
VIRTIO_MMIO_CMDLINE_DEVICES find them there), and the initrd placed at the top of low RAM.
"""
from __future__ import annotations

from hvtui.errors import ImageError
from hvtui.vmm.boot import BootContext, pc

VIRTIO_PARAM = "virtio_mmio.device="


def cmdline(ctx: BootContext, limit: int) -> bytes:
    """The user's command line plus one virtio_mmio.device= per live device, unless the
    user named them already; NUL-terminated, at most limit bytes before the NUL."""
    text = ctx.cmdline
    if VIRTIO_PARAM not in text:
        extra = " ".join(f"{VIRTIO_PARAM}4K@{base:#x}:{irq}" for base, irq in ctx.virtio)
        text = f"{text} {extra}".strip() if extra else text
    raw = text.encode()
    if len(raw) > limit:
        raise ImageError(f"{ctx.kernel_path}: the command line is {len(raw)} bytes (with hvtui's virtio "
                         f"announcements); this kernel takes at most {limit}")
    return raw + b"\0"


def initrd_size(ctx: BootContext) -> int:
    """The size of every --initrd file concatenated (Linux unpacks concatenated cpio
    archives), each padded to 4 bytes as the cpio format needs."""
    return sum(m.size + (-m.size % 4) for m in ctx.modules)


def write_initrd(ctx: BootContext, addr: int) -> None:
    """The --initrd files one after the other at addr, straight from their files; the
    padding written as zeros."""
    for m in ctx.modules:
        m.copy_to(ctx.memory, addr)
        pad = -m.size % 4
        ctx.memory.write(addr + m.size, bytes(pad))
        addr += m.size + pad


def place_initrd(ctx: BootContext, placer: pc.Placer, size: int, limit: int) -> int:
    """Top of low RAM, under limit (the kernel's initrd_addr_max): 0 when there is none."""
    if not size:
        return 0
    return placer.top(size, limit, "the initrd")
