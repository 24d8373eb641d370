"""VGA text mode and the PS/2 key tables without KVM: the register device as a text-mode
kernel drives it (CRTC cursor and start address, 16-bit index/data writes, the protect
bit, mono/colour addressing, retrace polling, the attribute flip-flop, the DAC), the
screen it describes over a memory, snapshots that restore exactly and refuse what no
guest write could produce, garbage that never breaks it; the TextScreen's code page 437,
colours and exports; key names, characters and terminal bytes to make and break codes;
and the ANSI drawing of `hvtui run --console vga`."""
import array
import re
import struct

import pytest
from hypothesis import given, settings, strategies as st

from hvtui import ps2keys, textscreen
from hvtui.errors import GuestMemoryError, SnapshotError
from hvtui.textscreen import BLANK, CELLS, DEFAULT_PALETTE, TextScreen
from hvtui.vgaterm import AnsiScreen
from hvtui.vmm.devices import vga
from hvtui.vmm.devices.vga import VgaText

CRTC_INDEX, CRTC_DATA = 0x3D4 - vga.BASE, 0x3D5 - vga.BASE


class Ram:
    """Guest RAM from 0 to 1 MiB (the low RAM a PC guest's text window lies in)."""

    def __init__(self, size=0x100000):
        self.data = bytearray(size)

    def read(self, gpa, n):
        if gpa < 0 or gpa + n > len(self.data):
            raise GuestMemoryError(f"{gpa:#x}+{n}")
        return bytes(self.data[gpa:gpa + n])

    def write(self, gpa, data):
        self.data[gpa:gpa + len(data)] = data

    def text(self, cell, s, attr=0x07):
        self.write(0xB8000 + 2 * cell, b"".join(bytes([ord(c), attr]) for c in s))


def port(dev, p, value=None, size=1):
    if value is None:
        return dev.read(p - vga.BASE, size)
    dev.write(p - vga.BASE, size, value)


def crtc(dev, index, value=None):
    port(dev, 0x3D4, index)
    return port(dev, 0x3D5, value)


# ---- the registers ----
def test_crtc_cursor_and_start_address_as_a_kernel_writes_them():
    dev, ram = VgaText(), Ram()
    vga.write_bios_data(ram)
    ram.text(0, "Hello")
    screen = dev.screen(ram)
    assert screen.row_text(0).startswith("Hello") and (screen.cursor.x, screen.cursor.y) == (0, 0)
    pos = 12 * 80 + 34
    crtc(dev, 0x0F, pos & 0xFF)
    port(dev, 0x3D4, (pos >> 8) << 8 | 0x0E, size=2)        # out %ax: index in al, data in ah
    assert (dev.screen(ram).cursor.x, dev.screen(ram).cursor.y) == (34, 12)
    assert crtc(dev, 0x0E) == pos >> 8 and port(dev, 0x3D4) == 0x0E
    crtc(dev, 0x0C, 0)
    crtc(dev, 0x0D, 80)                                     # scrolled by a row
    screen = dev.screen(ram)
    assert screen.row_text(0) == " " * 80 and (screen.cursor.x, screen.cursor.y) == (34, 11)


def test_cursor_shape_hidden_and_block():
    dev, ram = VgaText(), Ram()
    assert not dev.screen(ram).cursor.block                  # BIOS: lines 13-14 of 16
    crtc(dev, 0x0A, 0x00)
    crtc(dev, 0x0B, 0x0F)
    assert dev.screen(ram).cursor.block
    crtc(dev, 0x0A, 0x20)                                   # bit 5: off
    assert dev.screen(ram).cursor is None
    crtc(dev, 0x0A, 0x0E)
    crtc(dev, 0x0B, 0x0D)                                   # start after end: none either
    assert dev.screen(ram).cursor is None
    crtc(dev, 0x0B, 0x0F)
    crtc(dev, 0x0E, 0x07)
    crtc(dev, 0x0F, 0xD0)                                   # 2000: just past the screen
    assert dev.screen(ram).cursor is None


def test_linux_vgacon_start_up_and_hardware_scrolling():
    """What Linux's vgacon does on a VGA: the 16 palette registers pointed at DAC entries
    0-15 (each pair after a read of input status 1), the DAC loaded, the display re-enabled
    (index bit 5); then register pairs as two 16-bit writes (index | value << 8) to 0x3D4:
    start address 12/13 one row further per line scrolled, the cursor 14/15 counted from the
    window's start, and the screen copied back to offset 0 when the origin nears the end."""
    dev, ram = VgaText(), Ram()
    vga.write_bios_data(ram)
    for i in range(16):
        port(dev, 0x3DA)
        port(dev, 0x3C0, i)
        port(dev, 0x3C0, i)
    port(dev, 0x3C0, 0x20)
    for i in range(16):
        port(dev, 0x3C8, i)
        for c in (i * 4 % 64, 0, 63 - i * 4 % 64):
            port(dev, 0x3C9, c)
    screen = dev.screen(ram)
    assert screen.enabled
    assert screen.palette[2] == (8 * 255 // 63, 0, (63 - 8) * 255 // 63)     # DAC entry 2, not 0x02's EGA colour

    def write_vga(reg, value):
        port(dev, 0x3D4, reg | (value & 0xFF00), size=2)
        port(dev, 0x3D4, reg + 1 | (value << 8 & 0xFF00), size=2)

    origin = 179 * 80                           # 179 rows scrolled: the last that fits in 32 KiB
    ram.text(origin, "top row")
    ram.text(origin + 24 * 80, "bottom row")
    write_vga(12, origin)
    write_vga(14, origin + 24 * 80 + 10)
    screen = dev.screen(ram)
    assert screen.row_text(0).startswith("top row") and screen.row_text(24).startswith("bottom row")
    assert (screen.cursor.x, screen.cursor.y) == (10, 24)
    ram.text(0, "copied back")                  # the screen at offset 0 again
    write_vga(12, 0)
    write_vga(14, 5)
    screen = dev.screen(ram)
    assert screen.row_text(0).startswith("copied back") and (screen.cursor.x, screen.cursor.y) == (5, 0)


def test_crtc_protect_bit_and_registers_past_the_end():
    dev = VgaText()
    assert crtc(dev, 0x11) & 0x80                           # mode 3 leaves CR0-7 protected
    crtc(dev, 0x01, 0x12)
    assert crtc(dev, 0x01) == 0x4F
    crtc(dev, 0x07, 0xFF)
    assert crtc(dev, 0x07) == 0x1F | 0x10                   # only the line compare bit
    crtc(dev, 0x11, 0x0E)
    crtc(dev, 0x01, 0x12)
    assert crtc(dev, 0x01) == 0x12
    crtc(dev, 0x30, 0x55)
    assert crtc(dev, 0x30) == 0xFF and port(dev, 0x3D4) == 0x30


def test_mono_addressing_moves_the_crtc_and_status():
    dev = VgaText()
    assert port(dev, 0x3CC) == 0x67 and port(dev, 0x3B5) == 0xFF
    port(dev, 0x3C2, 0x66)                                  # I/O address select: mono
    port(dev, 0x3B4, 0x0A)
    assert port(dev, 0x3B5) == 0x0D and port(dev, 0x3D5) == 0xFF and port(dev, 0x3DA) == 0xFF
    assert port(dev, 0x3BA) in vga.STATUS_STEPS


def test_retrace_polling_ends():
    """while (inb(0x3da) & 8); while (!(inb(0x3da) & 8)); finishes in a few reads."""
    dev = VgaText()
    for _ in range(3):
        n = 0
        while port(dev, 0x3DA) & 8:
            n += 1
        while not port(dev, 0x3DA) & 8:
            n += 1
        assert n < 8


def test_attribute_controller_flip_flop_blink_and_palette():
    dev, ram = VgaText(), Ram()
    ram.text(0, "B", 0x9E)                                  # bit 7, bg 1, fg 14
    s = dev.screen(ram)
    assert s.blink and s.colours(0x9E) == (14, 1, True)
    port(dev, 0x3DA)                                        # flip-flop to index
    port(dev, 0x3C0, 0x30)                                  # mode control, screen on
    assert port(dev, 0x3C1) == 0x0C
    port(dev, 0x3C0, 0x04)                                  # blink off: bright backgrounds
    s = dev.screen(ram)
    assert not s.blink and s.colours(0x9E) == (14, 9, False) and s.enabled
    port(dev, 0x3C0, 0x01)                                  # index 1 without PAS: display off
    port(dev, 0x3C0, 0x3F)                                  # colour 1 -> DAC 0x3F (white)
    assert not dev.screen(ram).enabled
    port(dev, 0x3C0, 0x20)
    assert dev.screen(ram).enabled and dev.screen(ram).palette[1] == (255, 255, 255)


def test_dac_write_and_read_back():
    dev = VgaText()
    port(dev, 0x3C8, 0x01)                                  # entry 1: blue's
    for v in (0x3F, 0x20, 0x00):
        port(dev, 0x3C9, v)
    assert VgaText().palette()[1] == (0, 0, 170) and dev.palette()[1] == (255, 0x20 * 255 // 63, 0)
    port(dev, 0x3C7, 0x01)
    assert port(dev, 0x3C7) == 0x03
    assert [port(dev, 0x3C9) for _ in range(4)] == [0x3F, 0x20, 0x00, 0x00]   # then entry 2
    assert port(dev, 0x3C8) == 0x02


def test_graphics_register_6_picks_the_window():
    dev, ram = VgaText(), Ram()
    ram.write(0xB0000, b"M\x07")
    port(dev, 0x3CE, 6)
    port(dev, 0x3CF, 0x0A)                                  # memory map 2: 0xB0000
    assert dev.screen(ram).row_text(0)[0] == "M"


def test_start_address_past_the_window_wraps_inside_it():
    dev, ram = VgaText(), Ram()
    ram.text(0, "first")
    ram.text(16384 - 3, "END")
    crtc(dev, 0x0C, 0x3F)
    crtc(dev, 0x0D, 0xFD)                                   # 3 cells before the window's end
    assert dev.screen(ram).row_text(0).startswith("ENDfirst")
    crtc(dev, 0x0C, 0xFF)
    crtc(dev, 0x0D, 0xFF)                                   # 65535: far past it
    assert len(dev.screen(ram).cells) == CELLS * 2


def test_a_window_outside_ram_reads_blank():
    dev = VgaText()
    assert dev.screen(Ram(0x80000)) == TextScreen.blank()


def test_bios_data_area():
    ram = Ram()
    vga.write_bios_data(ram)
    assert ram.data[0x449] == 3 and struct.unpack_from("<H", ram.data, 0x44A)[0] == 80
    assert struct.unpack_from("<H", ram.data, 0x463)[0] == 0x3D4 and ram.data[0x484] == 24
    assert (struct.unpack_from("<H", ram.data, 0x410)[0] >> 4) & 3 == 2            # 80x25 colour
    assert set(array.array("H", ram.read(0xB8000, 0x8000))) == {BLANK}


# ---- snapshots ----
def test_save_restore_round_trip():
    dev = VgaText()
    crtc(dev, 0x0E, 0x01)
    port(dev, 0x3C8, 5)
    port(dev, 0x3C9, 0x11)
    port(dev, 0x3DA)
    port(dev, 0x3C0, 0x10)                                  # flip-flop left on "data", PAS off
    saved = dev.save()
    other = VgaText()
    other.restore(saved)
    assert other.save() == saved
    port(other, 0x3C0, 0x04)
    port(dev, 0x3C0, 0x04)
    assert other.save() == dev.save() and other.palette() == dev.palette()


@pytest.mark.parametrize("key, bad", [
    ("crtc", b"\0" * 24), ("seq", bytes([0xFF, 0, 0, 0, 0])), ("attr", bytes([0x40] + [0] * 20)),
    ("dac", b"\x40" * 768), ("crtc_index", 0x40), ("status_step", 4), ("dac_component", 3),
    ("attr_data_next", 1), ("misc", "0x67"), ("gc_index", -1), ("feature", 0xFF)])
def test_restore_refuses_what_no_write_makes(key, bad):
    state = VgaText().save()
    state[key] = bad
    dev = VgaText()
    before = dev.save()
    with pytest.raises(SnapshotError, match=key):
        dev.restore(state)
    assert dev.save() == before                              # nothing half-restored


def test_restore_refuses_missing_and_extra_keys():
    state = VgaText().save()
    del state["dac"]
    with pytest.raises(SnapshotError, match="missing"):
        VgaText().restore(state)
    with pytest.raises(SnapshotError, match="unexpected"):
        VgaText().restore({**VgaText().save(), "extra": 1})
    with pytest.raises(SnapshotError):
        VgaText().restore([1, 2])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, vga.SIZE - 1), st.sampled_from([1, 2, 4]), st.integers(0, 2**32 - 1),
                          st.booleans()), max_size=200))
def test_garbage_never_breaks_the_device(ops):
    dev, ram = VgaText(), Ram()
    for offset, size, value, write in ops:
        size = min(size, vga.SIZE - offset)
        if write:
            dev.write(offset, size, value & ((1 << (8 * size)) - 1))
        else:
            assert 0 <= dev.read(offset, size) < 1 << (8 * size)
    screen = dev.screen(ram)
    assert len(screen.lines()) == 25 and all(len(line) == 80 for line in screen.lines())
    assert len(screen.palette) == 16
    other = VgaText()
    other.restore(dev.save())                                # whatever a guest did restores
    assert other.save() == dev.save()


# ---- the screen value ----
def test_code_page_437_and_text():
    cells = bytearray(struct.pack("<H", BLANK) * CELLS)
    for i, b in enumerate([0x01, 0x03, 0xB0, 0xC9, 0xCD, 0xDB, 0x7F, 0xE1, 0x00, ord("A")]):
        cells[2 * i] = b
    s = TextScreen(bytes(cells))
    assert s.row_text(0).startswith("☺♥░╔═█⌂ß A")
    assert s.text().splitlines()[0] == "☺♥░╔═█⌂ß A" and s.text().count("\n") == 25
    assert s.used and not TextScreen.blank().used and not TextScreen(bytes(CELLS * 2)).used
    with pytest.raises(ValueError):
        TextScreen(b"short")


def test_svg_export_in_the_screens_colours(tmp_path):
    cells = bytearray(struct.pack("<H", BLANK) * CELLS)
    cells[0:6] = b"H\x1eI\x1e!\x9e"                          # yellow on blue; the last blinks
    s = TextScreen(bytes(cells), textscreen.Cursor(3, 0))
    svg = s.svg("t")
    assert 'fill="#0000aa"' in svg and 'fill="#ffff55"' in svg and ">HI<" in svg and "<animate" in svg
    txt, path = textscreen.save(s, str(tmp_path / "shot.svg"))
    assert txt.endswith("shot.txt") and path.endswith("shot.svg")
    assert (tmp_path / "shot.txt").read_text().startswith("HI!")


# ---- keys ----
SET1 = {"a": [0x1E, 0x9E], "A": [0x2A, 0x1E, 0x9E, 0xAA], "\n": [0x1C, 0x9C], "1": [0x02, 0x82],
        "~": [0x2A, 0x29, 0xA9, 0xAA], " ": [0x39, 0xB9], "\x03": [0x1D, 0x2E, 0xAE, 0x9D]}


def set1(keys):
    """What the 8042 makes of host keys with translation on (set 2 -> set 1)."""
    out = []
    for k in keys:
        if k & ps2keys.E0:
            out.append(0xE0)
        out.append(SET2_TO_SET1[k & 0xFF] | (0x80 if k & ps2keys.BREAK else 0))
    return out


SET2_TO_SET1 = {0x1C: 0x1E, 0x12: 0x2A, 0x5A: 0x1C, 0x16: 0x02, 0x0E: 0x29, 0x29: 0x39, 0x14: 0x1D, 0x21: 0x2E,
                0x75: 0x48, 0x6B: 0x4B, 0x11: 0x38, 0x76: 0x01, 0x83: 0x41, 0x22: 0x2D}


@pytest.mark.parametrize("ch", SET1)
def test_characters_to_scancodes(ch):
    assert set1(ps2keys.for_char(ch)) == SET1[ch]


def test_every_printable_ascii_character_has_keys():
    for c in map(chr, range(0x20, 0x7F)):
        keys = ps2keys.for_char(c)
        assert keys and keys[-1] & ps2keys.BREAK, c


def test_textual_keys_with_modifiers():
    assert set1(ps2keys.for_textual("up", None)) == [0xE0, 0x48, 0xE0, 0xC8]
    assert set1(ps2keys.for_textual("ctrl+shift+left", None)) == [0x1D, 0x2A, 0xE0, 0x4B, 0xE0, 0xCB, 0xAA, 0x9D]
    assert set1(ps2keys.for_textual("alt+x", None))[:1] == [0x38]
    assert ps2keys.for_textual("full_stop", ".") == ps2keys.for_char(".")
    assert ps2keys.for_textual("pause", None) == [ps2keys.PAUSE]
    assert ps2keys.for_textual("some_unknown_key", None) == []


def test_terminal_bytes_to_keys():
    t = ps2keys.TerminalKeys()
    assert set1(t.feed(b"\x1b[A")) == [0xE0, 0x48, 0xE0, 0xC8]
    assert set1(t.feed(b"\x1b[1;5D")) == [0x1D, 0xE0, 0x4B, 0xE0, 0xCB, 0x9D]     # ctrl+left
    assert t.feed(b"\x1b[21~") == ps2keys.for_name("f10")
    assert t.feed(b"\x1bOP") == ps2keys.for_name("f1")
    assert set1(t.feed(b"\x1bx"))[:1] == [0x38]                                   # alt+x
    assert t.feed(b"\x1b") == ps2keys.for_name("escape")
    assert t.feed("é".encode()[:1]) == [] and t.feed("é".encode()[1:]) == []      # no US key: none
    assert t.feed(b"\x03") == ps2keys.for_char("\x03")


# ---- the ANSI drawing ----
def rows_drawn(out) -> int:
    return len(re.findall(r"\x1b\[\d+;1H\x1b\[0;", "".join(out)))


def test_ansi_screen_draws_only_changed_rows():
    out = []
    ansi = AnsiScreen(out.append)
    ram, dev = Ram(), VgaText()
    vga.write_bios_data(ram)
    ansi.draw(dev.screen(ram))
    assert rows_drawn(out) == 25 and "\x1b[4 q\x1b[1;1H" in out[-1]
    ram.text(80 * 3, "x", 0x1E)
    out.clear()
    ansi.draw(dev.screen(ram))
    assert rows_drawn(out) == 1 and "\x1b[4;1H" in out[0] and "\x1b[0;93;44mx" in out[0]
    out.clear()
    ansi.draw(dev.screen(ram))
    assert out == []                                         # nothing changed: nothing written
    port(dev, 0x3C8, 1)
    for v in (0x3F, 0, 0):
        port(dev, 0x3C9, v)                                  # a palette change: 24-bit colour
    ansi.draw(dev.screen(ram))
    assert "48;2;255;0;0" in out[0] and rows_drawn(out) == 25
    assert DEFAULT_PALETTE != dev.palette()
