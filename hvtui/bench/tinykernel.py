"""The smallest PVH kernels: one that prints one line on COM1 and then writes 0 to the
debug-exit port, and one that halts for ever (an idle guest).

Built here as bytes (an ELF32 with one PT_LOAD and the XEN_ELFNOTE_PHYS32_ENTRY note) so
that hvtui and QEMU (`-M microvm -kernel`) boot exactly the same file in the benchmarks,
with nothing to compile.
"""
from __future__ import annotations

import struct

BASE = 0x100000
LINE = b"hello from a PVH guest\n"


def _code(msg_addr: int) -> bytes:
    return (bytes([0xBA, 0xF8, 0x03, 0, 0])                     # mov $0x3f8,%edx
            + bytes([0xBE]) + struct.pack("<I", msg_addr)        # mov $msg,%esi
            + bytes([0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8])   # 1: lodsb; test; jz 2f; out; jmp 1b
            + bytes([0x31, 0xC0, 0xE7, 0xF4, 0xF4]))             # 2: xor %eax,%eax; out %eax,$0xf4; hlt


def pvh_hello(line: bytes = LINE) -> bytes:
    code = _code(BASE + len(_code(0)))
    return pvh_elf(code + line + b"\0")


def pvh_idle() -> bytes:
    return pvh_elf(bytes([0xFA, 0xF4, 0xEB, 0xFD]))                # 1: cli; hlt; jmp 1b


def pvh_elf(payload: bytes) -> bytes:
    """An ELF32 loading payload at BASE, entered there through the PVH note."""
    note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", BASE)
    ehdr = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9) + struct.pack(
        "<HHIIIIIHHHHHH", 2, 3, 1, BASE, 52, 0, 0, 52, 32, 2, 40, 0, 0)
    phdrs = (struct.pack("<8I", 1, 0x1000, BASE, BASE, len(payload), len(payload), 5, 0x1000)
             + struct.pack("<8I", 4, 52 + 64, 0, 0, len(note), len(note), 4, 4))
    head = ehdr + phdrs + note
    return head + bytes(0x1000 - len(head)) + payload
