"""boot_params.screen_info without KVM: what the bzImage loader tells Linux about the text
mode (boot/screeninfo.py), from the BIOS data area as pc.write_bios_data leaves it and as a
kernel or a restored machine might have changed it, and where a synthetic bzImage's zero
page gets it. The same fields seen from inside a real guest: tests/test_boot_protocols.py."""
import struct

import pytest

import kernels
from hvtui._core import ffi
from hvtui.errors import GuestMemoryError
from hvtui.vmm.boot import BootContext, bzimage, pc, screeninfo
from hvtui.vmm.memory import GuestMemory

RAM = 64 << 20

# What vgacon_startup() needs for a VGA colour console: lines and cols non-zero, a text mode,
# ega_bx's low byte not 0x10 (that is MDA/CGA), isVGA 1, and the font's height.
MODE3 = {"orig_x": 0, "orig_y": 0, "orig_video_page": 0, "orig_video_mode": 3, "orig_video_cols": 80,
         "orig_video_ega_bx": 0x0003, "orig_video_lines": 25, "orig_video_isVGA": 1, "orig_video_points": 16}


def bios_ram(size=0x100000) -> GuestMemory:
    """Low RAM (the monitor's own bounds-checked GuestMemory) with the BIOS data area a PC
    guest starts with."""
    buf = ffi.new("char[]", size)
    ram = GuestMemory()
    ram.add(0, size, buf)
    ram._keepalive = buf
    pc.write_bios_data(ram)
    return ram


def test_the_bios_text_mode_is_what_vgacon_needs():
    raw = screeninfo.from_bios_data(bios_ram())
    assert len(raw) == 0x40 and screeninfo.fields(raw) == MODE3
    assert raw[0x12:] == bytes(0x40 - 0x12)                 # no linear frame buffer


def test_the_cursor_comes_from_the_active_page_in_the_bda():
    ram = bios_ram()
    ram.write(0x450, bytes([5, 7]))                          # page 0: column 5, row 7
    assert screeninfo.fields(screeninfo.from_bios_data(ram))["orig_x"] == 5
    assert screeninfo.fields(screeninfo.from_bios_data(ram))["orig_y"] == 7
    ram.write(0x452, bytes([9, 3]))                          # page 1's cursor, page 1 active
    ram.write(0x462, bytes([1]))
    f = screeninfo.fields(screeninfo.from_bios_data(ram))
    assert (f["orig_x"], f["orig_y"], f["orig_video_page"]) == (9, 3, 1)


def test_a_cursor_off_the_screen_is_kept_on_it():
    ram = bios_ram()
    ram.write(0x450, bytes([200, 60]))
    f = screeninfo.fields(screeninfo.from_bios_data(ram))
    assert (f["orig_x"], f["orig_y"]) == (79, 24)


def test_other_text_modes_and_sizes():
    ram = bios_ram()
    ram.write(0x449, bytes([0x83]))                          # bit 7 (memory not cleared) dropped
    ram.write(0x484, bytes([49]))                            # 50 rows
    ram.write(0x485, struct.pack("<H", 8))
    f = screeninfo.fields(screeninfo.from_bios_data(ram))
    assert (f["orig_video_mode"], f["orig_video_lines"], f["orig_video_points"]) == (3, 50, 8)
    ram.write(0x449, bytes([0x07]))                          # monochrome: BH 1
    assert screeninfo.fields(screeninfo.from_bios_data(ram))["orig_video_ega_bx"] == 0x0103


@pytest.mark.parametrize("where, value", [
    (0x449, b"\x12"),                 # 640x480 graphics: no text console
    (0x449, b"\x13"),
    (0x44A, b"\x00\x00"),             # no columns
    (0x44A, b"\x00\x01"),             # 256 columns: more than the field holds
    (0x484, b"\xff"),                 # 256 rows: likewise
    (0x485, b"\x00\x00"),             # no font
    (0x462, b"\x08"),                 # no such page
])
def test_a_bda_with_no_usable_text_mode_gives_no_screen(where, value):
    ram = bios_ram()
    ram.write(where, value)
    assert screeninfo.from_bios_data(ram) == bytes(0x40)


def test_no_ram_at_the_bda_gives_no_screen():
    class NoRam:
        def read(self, gpa, n):
            raise GuestMemoryError(f"{gpa:#x}+{n}")
    assert screeninfo.from_bios_data(NoRam()) == bytes(0x40)


def test_a_synthetic_bzimage_finds_it_in_its_zero_page():
    ram = bios_ram(RAM)
    ram.write(0x450, bytes([12, 4]))
    ctx = BootContext(kernel_path="k", image=kernels.bzimage(), cmdline="console=tty0", modules=[], memory=ram,
                      ram_size=RAM, low_end=RAM, high_size=0, vcpus=1)
    bzimage.load(ctx)
    raw = ram.read(bzimage.BOOT_PARAMS_ADDR, 0x40)
    assert screeninfo.fields(raw) == {**MODE3, "orig_x": 12, "orig_y": 4}
    assert ram.read(bzimage.BOOT_PARAMS_ADDR + 0x202, 4) == b"HdrS"     # the header still there
