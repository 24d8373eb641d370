"""boot_params.screen_info (the zero page's first 0x40 bytes) for a Linux bzImage: what
Linux's real-mode setup code (arch/x86/boot/video*.c) would have stored after asking a VGA
BIOS about the text mode the machine is in. hvtui enters the kernel at its 64-bit entry,
past that code, so the loader fills the fields itself, from the BIOS data area that
pc.write_bios_data left (mode, columns, rows, font height, active page and its cursor):

- orig_x, orig_y: the active page's cursor (BDA 0x450 + 2 * page: column, row), as INT 10h
  AH=03h returns it; vgacon and the decompressor go on writing from there.
- orig_video_page, orig_video_mode: INT 10h AH=0Fh (BDA 0x462, 0x449 without bit 7).
- orig_video_cols: BDA 0x44A; orig_video_lines: BDA 0x484 + 1; orig_video_points: BDA 0x485.
- orig_video_ega_bx: INT 10h AH=12h BL=10h's BX: BH 0 (a colour display; 1 for mode 7),
  BL 3 (256 KiB of video memory). Not 0x10, so vgacon takes the card for an EGA or better.
- orig_video_isVGA: 1, as INT 10h AX=1A00h answering 0x1A says (a VGA, not an EGA).

With them, Linux's vgacon takes the text window at 0xB8000 (0xB0000 for mode 7) and the
CRTC at 0x3D4 (devices/vga.py) as its console: `console=tty0` shows the kernel's messages
on the VGA screen. A BDA that holds no text mode vgacon can drive (a graphics mode, zero
columns or rows) gives an all-zero screen_info: Linux then stays on its dummy console.

The other protocols: PVH's hvm_start_info carries no video information, so Linux booted
through PVH (its vmlinux) keeps the dummy console and only its serial console shows it;
Multiboot kernels get no video fields (hvtui refuses a framebuffer request) and write the
text window at 0xB8000 themselves, as the BDA describes it.
"""
from __future__ import annotations

import struct

from hvtui.errors import GuestMemoryError

SIZE = 0x40                      # struct screen_info
BDA = 0x400                      # the BIOS data area: 0x400-0x4FF
BDA_SIZE = 0x100
TEXT_MODES = (0x00, 0x01, 0x02, 0x03, 0x07)     # the BIOS's text modes (40 or 80 columns)
MONO_MODE = 0x07
EGA_BX_256K = 0x03               # INT 10h AH=12h BL=10h: BL = video memory (3: 256 KiB)
IS_VGA = 1
MAX_PAGES = 8
# the fields filled, from the start of struct screen_info: orig_x, orig_y, ext_mem_k,
# orig_video_page, orig_video_mode, orig_video_cols, flags+unused2, orig_video_ega_bx,
# unused3, orig_video_lines, orig_video_isVGA, orig_video_points
FIELDS = struct.Struct("<BBHHBBHHHBBH")


def from_bios_data(memory) -> bytes:
    """The 0x40 bytes of screen_info as the BIOS data area in guest memory describes the
    display; all zero when it describes no text mode (or is not guest RAM)."""
    try:
        bda = memory.read(BDA, BDA_SIZE)
    except GuestMemoryError:
        return bytes(SIZE)
    mode = bda[0x49] & 0x7F
    cols = struct.unpack_from("<H", bda, 0x4A)[0]
    lines = bda[0x84] + 1
    points = struct.unpack_from("<H", bda, 0x85)[0]
    page = bda[0x62]
    if mode not in TEXT_MODES or not 0 < cols <= 0xFF or lines > 0xFF or not 0 < points <= 32 or page >= MAX_PAGES:
        return bytes(SIZE)
    x, y = bda[0x50 + 2 * page], bda[0x51 + 2 * page]
    x, y = min(x, cols - 1), min(y, lines - 1)      # a BIOS never leaves it off the screen
    ega_bx = (0x0100 if mode == MONO_MODE else 0) | EGA_BX_256K
    out = bytearray(SIZE)
    FIELDS.pack_into(out, 0, x, y, 0, page, mode, cols, 0, ega_bx, 0, lines, IS_VGA, points)
    return bytes(out)


def fields(raw: bytes) -> dict:
    """The fields from_bios_data fills, by their Linux names (for tests and debugging)."""
    x, y, _, page, mode, cols, _, ega_bx, _, lines, is_vga, points = FIELDS.unpack_from(raw, 0)
    return {"orig_x": x, "orig_y": y, "orig_video_page": page, "orig_video_mode": mode,
            "orig_video_cols": cols, "orig_video_ega_bx": ega_bx, "orig_video_lines": lines,
            "orig_video_isVGA": is_vga, "orig_video_points": points}
