"""Synthetic kernel files for the boot-protocol tests: each builder writes the headers a
protocol reads, with keyword arguments to break any one field on purpose. The code in
them is a few bytes that write to the debug-exit port (they are never meant to do more).
"""
from __future__ import annotations

import struct

# mov $0x2a,%eax; out %eax,$0xf4; hlt   (valid in 32- and 64-bit mode)
CODE = bytes([0xB8, 42, 0, 0, 0, 0xE7, 0xF4, 0xF4])


def elf32(entry=None, paddr=0x100000, memsz=None, body=CODE, head=b"", notes=b"", machine=3) -> bytes:
    """An ELF32 executable with one PT_LOAD (head + body at file offset 0x1000; the entry
    is body's first byte unless given) and an optional PT_NOTE."""
    payload = head + body
    entry = paddr + len(head) if entry is None else entry
    memsz = len(payload) if memsz is None else memsz
    phnum = 2 if notes else 1
    ehdr = (b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
            + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, entry, 52, 0, 0, 52, 32, phnum, 40, 0, 0))
    phdrs = struct.pack("<8I", 1, 0x1000, paddr, paddr, len(payload), memsz, 7, 0x1000)
    note_off = 52 + 32 * phnum
    if notes:
        phdrs += struct.pack("<8I", 4, note_off, 0, 0, len(notes), len(notes), 4, 4)
    out = ehdr + phdrs + notes
    return out + bytes(0x1000 - len(out)) + payload


def xen_note(entry: int) -> bytes:
    """XEN_ELFNOTE_PHYS32_ENTRY (type 18, name "Xen")."""
    return struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", entry)


def pvh(entry=0x100000, paddr=0x100000, **kw) -> bytes:
    return elf32(entry=paddr, paddr=paddr, notes=xen_note(entry), **kw)


def mb1_header(flags=0x3, magic=0x1BADB002, checksum=None, address=None) -> bytes:
    checksum = (-(magic + flags)) & 0xFFFFFFFF if checksum is None else checksum
    hdr = struct.pack("<III", magic, flags, checksum)
    if address is not None:
        hdr += struct.pack("<5I", *address)
    return hdr


def mb1_elf(**kw) -> bytes:
    """Multiboot 1 header at the start of the loaded segment of an ELF32."""
    return elf32(head=mb1_header(**kw) + bytes(4))


def mb1_aout(load=0x200000, header=None, load_end=None, bss_end=None, entry=None, flags=0x10003,
             truncate=None) -> bytes:
    """The a.out kludge: a flat file whose header (at offset 0) gives the addresses."""
    header = load if header is None else header
    size = 32 + 8 + len(CODE)
    load_end = load + size if load_end is None else load_end
    bss_end = load + 0x2000 if bss_end is None else bss_end
    entry = load + 40 if entry is None else entry
    raw = mb1_header(flags=flags, address=(header, load, load_end, bss_end, entry)) + bytes(8) + CODE
    return raw[:truncate] if truncate is not None else raw


def mb2_header(tags=(), arch=0, magic=0xE85250D6, length=None, checksum=None, end=True,
               bad_size=None) -> bytes:
    body = b""
    for typ, flags, payload in tags:
        t = struct.pack("<HHI", typ, flags, bad_size or 8 + len(payload)) + payload
        body += t + bytes(-len(t) % 8)
    if end:
        body += struct.pack("<HHI", 0, 0, 8)
    length = 16 + len(body) if length is None else length
    checksum = (-(magic + arch + length)) & 0xFFFFFFFF if checksum is None else checksum
    return struct.pack("<IIII", magic, arch, length, checksum) + body


def mb2_elf(**kw) -> bytes:
    return elf32(head=mb2_header(**kw))


def bzimage(version=0x020F, setup_sects=1, xloadflags=1, loadflags=1, boot_flag=0xAA55, pref=0x1000000,
            init_size=0x10000, cmdline_size=2047, initrd_max=0x7FFFFFFF, truncate=None) -> bytes:
    """A bzImage: boot sector + setup sectors with the header, then the 'kernel' (CODE at
    0x200, its 64-bit entry)."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    kernel = bytes(0x200) + CODE
    struct.pack_into("<I", setup, 0x1F4, (len(kernel) + 15) // 16)
    struct.pack_into("<H", setup, 0x1FE, boot_flag)
    setup[0x200:0x202] = bytes([0xEB, 0x66])              # jmp: header ends at 0x268
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, initrd_max)
    struct.pack_into("<I", setup, 0x230, 0x200000)
    setup[0x234] = 1
    setup[0x236] = xloadflags
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<Q", setup, 0x258, pref)
    struct.pack_into("<I", setup, 0x260, init_size)
    raw = bytes(setup) + kernel
    return raw[:truncate] if truncate is not None else raw
