"""The catalogue of built-in guest images (built from guests/ at install): the tiny
guests (hvtui's own ELF64 boot ABI) and one test kernel per PC boot protocol (guests/pc/).

An IMAGE argument is a built-in name or a path to a kernel file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hvtui.errors import ImageError

PACKAGE_IMAGES = Path(__file__).parent / "images"


@dataclass(frozen=True)
class BuiltinImage:
    name: str
    description: str
    default_cmdline: str = ""
    file: str = ""          # the file in the image folder; NAME.elf unless given

    @property
    def filename(self) -> str:
        return self.file or f"{self.name}.elf"


BUILTINS = {i.name: i for i in [
    BuiltinImage("hello", "prints a banner and exits 0"),
    BuiltinImage("counter", "prints an increasing number about every 100 ms, forever"),
    BuiltinImage("shell", "a prompt over the serial console: help, echo, mem N, crash KIND, exit N"),
    BuiltinImage("crash", "crashes on purpose: cmdline triple | ud | mmio | hang", "triple"),
    BuiltinImage("memhog", "touches every page of its RAM, verifies it, exits 0 (cmdline mib=N)"),
    BuiltinImage("exitbench", "port-I/O exit loop for benchmarks (cmdline port=P count=N cpl=0|3)"),
    BuiltinImage("blkbench", "virtio-blk vs ATA PIO on --disk: write, verify, MiB/s (pv_mib= emu_kib= width=2|4 mode=bench|badring|rowrite)"),
    BuiltinImage("busy", "computes at CPL 0 with interrupts off, no exits, for seconds=N (60), then exits 0",
                 "seconds=60"),
    BuiltinImage("vconsole", "virtio-console (hvc0) echo: prints 'vconsole: ready', echoes what the host types"),
    BuiltinImage("mb1", "Multiboot 1 test kernel (ELF32): prints its memory map, command line, modules; exits 0"),
    BuiltinImage("mb1-aout", "the same through Multiboot 1's a.out-kludge address fields (a flat binary)",
                 file="mb1-aout.bin"),
    BuiltinImage("mb2", "Multiboot 2 test kernel: prints the information tags it was given; exits 0"),
    BuiltinImage("pvh", "PVH test kernel (ELF with the Xen entry note): prints its start info; exits 0"),
    BuiltinImage("bzimage", "Linux-boot-protocol test kernel (bzImage, 64-bit entry): prints boot_params; exits 0",
                 file="bzimage.bin"),
    BuiltinImage("smp", "Multiboot kernel for 2+ vCPUs: parses the MP table, starts every AP with INIT/SIPI"),
    BuiltinImage("gdbtest", "Multiboot ELF64 with symbols for gdb: tick() in a loop, a global, a value in RAX "
                 "(cmdline ticks=N delay=MS)"),
    BuiltinImage("vgademo", "VGA text + PS/2 keyboard demo: paints every colour and attribute, echoes each key "
                 "(screen and COM1); F10 quits (cmdline delay=N paints slowly)"),
]}


def image_dir() -> Path:
    return Path(os.environ.get("HVTUI_IMAGE_DIR", PACKAGE_IMAGES))


def resolve(image: str) -> str:
    """Path of a built-in image name, or the given path checked to exist."""
    if image in BUILTINS:
        path = image_dir() / BUILTINS[image].filename
        if not path.is_file():
            raise ImageError(f"built-in image {image!r} is missing at {path}: reinstall hvtui "
                             "(pip install .) to build the guests")
        return str(path)
    if os.sep in image or image.endswith(".elf") or os.path.exists(image):
        from hvtui.vmm.boot import file_size
        file_size(image)          # a regular file, or one line naming what it is instead
        return image
    raise ImageError(f"unknown image {image!r}: built-in images are {', '.join(BUILTINS)}; "
                     "or give a path to a kernel file")


def default_cmdline(image: str) -> str:
    b = BUILTINS.get(image)
    return b.default_cmdline if b else ""


def builtin_name(path: str) -> str:
    """The built-in name of a resolved image path (what resolve() gave), else the path."""
    for name, img in BUILTINS.items():
        if os.path.abspath(path) == os.path.abspath(image_dir() / img.filename):
            return name
    return path
