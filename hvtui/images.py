"""The catalogue of built-in guest images (ELF files built from guests/ at install).

An IMAGE argument is a built-in name or a path to an ELF64 x86-64 file.
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


BUILTINS = {i.name: i for i in [
    BuiltinImage("hello", "prints a banner and exits 0"),
    BuiltinImage("counter", "prints an increasing number about every 100 ms, forever"),
    BuiltinImage("shell", "a prompt over the serial console: help, echo, mem N, crash KIND, exit N"),
    BuiltinImage("crash", "crashes on purpose: cmdline triple | ud | mmio | hang", "triple"),
    BuiltinImage("memhog", "touches every page of its RAM, verifies it, exits 0 (cmdline mib=N)"),
    BuiltinImage("exitbench", "port-I/O exit loop for benchmarks (cmdline port=P count=N cpl=0|3)"),
    BuiltinImage("blkbench", "virtio-blk vs ATA PIO on --disk: write, verify, MiB/s (pv_mib= emu_kib= width=2|4 mode=bench|badring)"),
    BuiltinImage("busy", "computes at CPL 0 with interrupts off, no exits, for seconds=N (60), then exits 0",
                 "seconds=60"),
    BuiltinImage("vconsole", "virtio-console (hvc0) echo: prints 'vconsole: ready', echoes what the host types"),
]}


def image_dir() -> Path:
    return Path(os.environ.get("HVTUI_IMAGE_DIR", PACKAGE_IMAGES))


def resolve(image: str) -> str:
    """Path of a built-in image name, or the given path checked to exist."""
    if image in BUILTINS:
        path = image_dir() / f"{image}.elf"
        if not path.is_file():
            raise ImageError(f"built-in image {image!r} is missing at {path}: reinstall hvtui "
                             "(pip install .) to build the guests")
        return str(path)
    if os.sep in image or image.endswith(".elf") or os.path.exists(image):
        if not os.path.isfile(image):
            raise ImageError(f"{image}: no such file")
        return image
    raise ImageError(f"unknown image {image!r}: built-in images are {', '.join(BUILTINS)}; "
                     "or give a path to an ELF64 x86-64 file")


def default_cmdline(image: str) -> str:
    b = BUILTINS.get(image)
    return b.default_cmdline if b else ""
