"""Reading ELF kernels (32- and 64-bit x86) with pyelftools: class, entry, the PT_LOAD
segments by physical address, and the notes. Nothing here touches guest memory.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hvtui.errors import ImageError

ELF_MAGIC = b"\x7fELF"
MACHINES = {"EM_386": 32, "EM_X86_64": 64}


@dataclass
class Segment:
    paddr: int
    memsz: int
    data: bytes | memoryview      # a view of the file: nothing is copied until it is written


@dataclass
class ElfImage:
    bits: int                 # 32 or 64 (the file's class)
    entry: int
    segments: list[Segment]
    notes: list[tuple[str, int, bytes]]    # (name, type, desc)

    @property
    def start(self) -> int:
        return min(s.paddr for s in self.segments)

    @property
    def end(self) -> int:
        return max(s.paddr + s.memsz for s in self.segments)


def is_elf(image: bytes) -> bool:
    return image[:4] == ELF_MAGIC


def _notes(data: bytes, align: int) -> list[tuple[str, int, bytes]]:
    out, off = [], 0
    pad = max(4, align)
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        off += 12
        name = data[off:off + namesz].rstrip(b"\0").decode("latin-1")
        off += (namesz + pad - 1) & ~(pad - 1)
        desc = data[off:off + descsz]
        off += (descsz + pad - 1) & ~(pad - 1)
        if len(desc) != descsz:
            break
        out.append((name, ntype, desc))
    return out


def notes(image: bytes) -> list[tuple[str, int, bytes]]:
    """The notes of an ELF file's PT_NOTE segments, read without checking the rest (for
    recognising a file); [] when there are none or the file is not an ELF."""
    try:
        elf = ELFFile(io.BytesIO(image))
        return [n for seg in elf.iter_segments() if seg["p_type"] == "PT_NOTE"
                for n in _notes(seg.data(), seg["p_align"])]
    except (ELFError, ValueError, OSError, KeyError, AssertionError, struct.error):
        return []


def parse(path: str, image: bytes) -> ElfImage:
    """The x86 ELF executable in image, or one ImageError line."""
    try:
        elf = ELFFile(io.BytesIO(image))
        bits = MACHINES.get(elf["e_machine"])
        if bits is None:
            raise ImageError(f"{path}: ELF for {elf['e_machine']}, not x86")
        if elf["e_type"] != "ET_EXEC":
            raise ImageError(f"{path}: ELF type {elf['e_type']}; a kernel must be a static executable (ET_EXEC)")
        segs, notes = [], []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_NOTE":
                notes += _notes(seg.data(), seg["p_align"])
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            if seg["p_filesz"] > seg["p_memsz"]:
                raise ImageError(f"{path}: a segment's file size exceeds its memory size")
            if seg["p_offset"] + seg["p_filesz"] > len(image):
                raise ImageError(f"{path}: a segment lies beyond the end of the file (truncated?)")
            # a view, not seg.data(): no copy of a segment before its address is checked
            data = memoryview(image)[seg["p_offset"]:seg["p_offset"] + seg["p_filesz"]]
            segs.append(Segment(seg["p_paddr"], seg["p_memsz"], data))
        if not segs:
            raise ImageError(f"{path}: no loadable segment")
        return ElfImage(elf.elfclass, elf["e_entry"], segs, notes)
    except ImageError:
        raise
    except (ELFError, ValueError, OSError, KeyError, AssertionError, struct.error) as e:
        raise ImageError(f"{path}: not a valid ELF file ({e})") from None


def check_segments(path: str, elf: ElfImage, lowest: int, highest: int) -> None:
    """Every segment inside [lowest, highest), no two overlapping, the entry inside one."""
    for s in elf.segments:
        if s.paddr < lowest or s.paddr + s.memsz > highest:
            raise ImageError(
                f"{path}: segment {s.paddr:#x}..{s.paddr + s.memsz:#x} lies outside the guest's usable RAM "
                f"({lowest:#x}..{highest:#x}); give the guest more memory or relink it")
    ordered = sorted(elf.segments, key=lambda s: s.paddr)
    for a, b in zip(ordered, ordered[1:]):
        if a.paddr + a.memsz > b.paddr:
            raise ImageError(f"{path}: segments at {a.paddr:#x} and {b.paddr:#x} overlap")


def write_segments(memory, segments: list[Segment]) -> None:
    """Each segment's bytes, then zeros up to its memory size (bss), in bounded chunks
    (check_segments has put every segment inside guest RAM first)."""
    chunk = 1 << 20
    for s in segments:
        memory.write(s.paddr, s.data)
        for at in range(s.paddr + len(s.data), s.paddr + s.memsz, chunk):
            memory.write(at, bytes(min(chunk, s.paddr + s.memsz - at)))
