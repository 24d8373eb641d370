"""Loading guest images into guest memory: ELF64 x86-64 executables (pyelftools).

Everything read from the file is checked before it is written: the class, machine and
type, and every PT_LOAD segment's address and size against guest RAM and the regions
the monitor keeps for itself. A bad file raises ImageError and leaves memory as it was.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hvtui.errors import GuestMemoryError, ImageError
from hvtui.vmm import layout
from hvtui.vmm.memory import GuestMemory

PAGE = 4096


@dataclass
class LoadedImage:
    entry: int
    start: int
    end: int        # first byte after the last segment, page aligned


def _segments(path: str):
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64:
                raise ImageError(f"{path}: a {elf.elfclass}-bit ELF; hvtui loads ELF64 x86-64 only")
            if elf["e_machine"] != "EM_X86_64":
                raise ImageError(f"{path}: ELF for {elf['e_machine']}, not x86-64")
            if elf["e_type"] != "ET_EXEC":
                raise ImageError(f"{path}: ELF type {elf['e_type']}; hvtui needs a static executable (ET_EXEC)")
            segs = []
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                    continue
                if seg["p_filesz"] > seg["p_memsz"]:
                    raise ImageError(f"{path}: a segment's file size exceeds its memory size")
                segs.append((seg["p_paddr"], seg["p_memsz"], seg.data()))
            return elf["e_entry"], segs
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except (ELFError, ValueError, OSError, KeyError, AssertionError) as e:
        raise ImageError(f"{path}: not a valid ELF file ({e})") from None


def load_elf(path: str, memory: GuestMemory, low_ram_end: int, vcpus: int) -> LoadedImage:
    """Check the whole image first, then copy its segments into guest memory."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    entry, segs = _segments(path)
    if not segs:
        raise ImageError(f"{path}: no loadable segment")
    usable_end = layout.free_end(low_ram_end, vcpus)
    for gpa, memsz, _ in segs:
        if gpa < layout.IMAGE_BASE or gpa + memsz > usable_end:
            raise ImageError(
                f"{path}: segment {gpa:#x}..{gpa + memsz:#x} lies outside the guest's usable RAM "
                f"({layout.IMAGE_BASE:#x}..{usable_end:#x}); give the guest more memory or relink it")
        try:
            memory.check(gpa, memsz)
        except GuestMemoryError as e:
            raise ImageError(f"{path}: {e}") from None
    start = min(g for g, _, _ in segs)
    end = max(g + m for g, m, _ in segs)
    if not any(g <= entry < g + m for g, m, _ in segs):
        raise ImageError(f"{path}: entry point {entry:#x} is outside its segments")
    for gpa, memsz, data in segs:
        memory.write(gpa, data + bytes(memsz - len(data)))
    return LoadedImage(entry=entry, start=start, end=(end + PAGE - 1) & ~(PAGE - 1))
