"""Reading ELF kernels (32- and 64-bit x86): class, entry, the PT_LOAD segments by
physical address, and the notes. Nothing here touches guest memory.

The file header and the program headers are read with struct (about fifty lines), not with
pyelftools, the library chosen for ELF first: importing its ELFFile costs ~25 ms, more than
half of QEMU's whole run of a tiny kernel (`hvtui bench startup`), and a loader needs none
of what it adds (sections, symbols, DWARF). Every field read is checked against the file's
size before it is used; a file that lies gets one ImageError line.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from hvtui.errors import ImageError

ELF_MAGIC = b"\x7fELF"
MACHINES = {3: 32, 62: 64}                 # EM_386, EM_X86_64
MACHINE_NAMES = {2: "EM_SPARC", 3: "EM_386", 8: "EM_MIPS", 20: "EM_PPC", 21: "EM_PPC64", 22: "EM_S390",
                 40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64", 243: "EM_RISCV", 258: "EM_LOONGARCH"}
TYPE_NAMES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
ET_EXEC, PT_LOAD, PT_NOTE, PN_XNUM = 2, 1, 4, 0xFFFF
# per class (1: 32-bit, 2: 64-bit): the header after e_ident, a program header
EHDR = {1: struct.Struct("<HHIIIIIHHHHHH"), 2: struct.Struct("<HHIQQQIHHHHHH")}
SHDR_INFO = {1: struct.Struct("<IIIIIIII"), 2: struct.Struct("<IIQQQQII")}    # up to sh_info
PHDR32 = struct.Struct("<IIIIIIII")       # type offset vaddr paddr filesz memsz flags align
PHDR64 = struct.Struct("<IIQQQQQQ")       # type flags offset vaddr paddr filesz memsz align


class _Malformed(ValueError):
    """What is wrong with the file's structure (parse says it with the file's name)."""


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


@dataclass
class _Header:
    elfclass: int            # 1 or 2
    etype: int
    machine: int
    entry: int
    phdrs: list[tuple[int, int, int, int, int, int]]     # (type, offset, paddr, filesz, memsz, align)


def is_elf(image: bytes) -> bool:
    return image[:4] == ELF_MAGIC


def _header(image: bytes) -> _Header:
    """The file header and the program headers, each checked to lie inside the file."""
    if len(image) < 16 or not is_elf(image):
        raise _Malformed("no ELF magic")
    elfclass, data = image[4], image[5]
    if elfclass not in EHDR:
        raise _Malformed(f"unknown ELF class {elfclass}")
    if data != 1:
        raise _Malformed("big-endian or unknown data encoding" if data == 2 else f"unknown data encoding {data}")
    ehdr = EHDR[elfclass]
    if len(image) < 16 + ehdr.size:
        raise _Malformed("truncated ELF header")
    (etype, machine, _version, entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, _shnum, _shstrndx) = ehdr.unpack_from(image, 16)
    phdr = PHDR32 if elfclass == 1 else PHDR64
    if phnum == PN_XNUM:                       # the real count is in section 0's sh_info
        shdr = SHDR_INFO[elfclass]
        if shentsize < shdr.size or shoff + shdr.size > len(image):
            raise _Malformed("program header count in a section header beyond the end of the file")
        phnum = shdr.unpack_from(image, shoff)[7]
    if phnum and phentsize < phdr.size:
        raise _Malformed(f"program header entries of {phentsize} bytes (at least {phdr.size})")
    if phoff + phnum * phentsize > len(image):
        raise ImageError("program headers lie beyond the end of the file (truncated?)")
    phdrs = []
    for i in range(phnum):
        f = phdr.unpack_from(image, phoff + i * phentsize)
        if elfclass == 1:
            ptype, offset, _vaddr, paddr, filesz, memsz, _pflags, align = f
        else:
            ptype, _pflags, offset, _vaddr, paddr, filesz, memsz, align = f
        phdrs.append((ptype, offset, paddr, filesz, memsz, align))
    return _Header(elfclass, etype, machine, entry, phdrs)


def _notes(data: bytes, align: int) -> list[tuple[str, int, bytes]]:
    out, off = [], 0
    pad = max(4, align)
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        off += 12
        name = bytes(data[off:off + namesz]).rstrip(b"\0").decode("latin-1")
        off += (namesz + pad - 1) & ~(pad - 1)
        desc = bytes(data[off:off + descsz])
        off += (descsz + pad - 1) & ~(pad - 1)
        if len(desc) != descsz:
            break
        out.append((name, ntype, desc))
    return out


def _segment_notes(image: bytes, phdrs) -> list[tuple[str, int, bytes]]:
    view = memoryview(image)
    return [n for ptype, offset, _paddr, filesz, _memsz, align in phdrs if ptype == PT_NOTE
            for n in _notes(view[offset:offset + filesz], align)]


def notes(image: bytes) -> list[tuple[str, int, bytes]]:
    """The notes of an ELF file's PT_NOTE segments, read without checking the rest (for
    recognising a file); [] when there are none or the file is not an ELF."""
    try:
        return _segment_notes(image, _header(image).phdrs)
    except (ImageError, ValueError, struct.error):
        return []


def parse(path: str, image: bytes) -> ElfImage:
    """The x86 ELF executable in image, or one ImageError line."""
    try:
        h = _header(image)
    except ImageError as e:
        raise ImageError(f"{path}: {e}") from None
    except (ValueError, struct.error) as e:
        raise ImageError(f"{path}: not a valid ELF file ({e})") from None
    bits = MACHINES.get(h.machine)
    if bits is None:
        raise ImageError(f"{path}: ELF for {MACHINE_NAMES.get(h.machine, f'machine {h.machine}')}, not x86")
    if h.etype != ET_EXEC:
        raise ImageError(f"{path}: ELF type {TYPE_NAMES.get(h.etype, f'{h.etype:#x}')}; a kernel must be a static "
                         f"executable (ET_EXEC)")
    segs = []
    for ptype, offset, paddr, filesz, memsz, _align in h.phdrs:
        if ptype != PT_LOAD or memsz == 0:
            continue
        if filesz > memsz:
            raise ImageError(f"{path}: a segment's file size exceeds its memory size")
        if offset + filesz > len(image):
            raise ImageError(f"{path}: a segment lies beyond the end of the file (truncated?)")
        # a view: no copy of a segment before its address is checked
        segs.append(Segment(paddr, memsz, memoryview(image)[offset:offset + filesz]))
    if not segs:
        raise ImageError(f"{path}: no loadable segment")
    return ElfImage(32 if h.elfclass == 1 else 64, h.entry, segs, _segment_notes(image, h.phdrs))


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
