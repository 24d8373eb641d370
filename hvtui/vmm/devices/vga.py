"""VGA text mode: the registers a text-mode kernel programs and polls (ports 0x3B0-0x3DF),
and the screen they describe over the text window in guest RAM.

The text window (0xB8000, 32 KiB) is plain guest memory: a guest's writes there never
exit, and the monitor reads it (screen()) when it draws. The ports:
- CRT controller, index 0x3D4 / data 0x3D5 (0x3B4/0x3B5 when the miscellaneous output
  register's bit 0 selects mono addressing): 25 registers, of which the screen uses the
  start address (0x0C/0x0D), the cursor location (0x0E/0x0F), its shape (0x0A/0x0B: first
  and last scan line, bit 5 of 0x0A hides it) and the character height (0x09). Register
  0x11 bit 7 write-protects 0x00-0x07, as on the chip. An index past 0x18 reads 0xFF.
- Miscellaneous output (write 0x3C2, read 0x3CC), input status 0 (read 0x3C2) and 1
  (read 0x3DA or 0x3BA: bit 3 vertical retrace, bit 0 display disabled; each read moves
  one step through active, blank, retrace, blank, so a kernel waiting for retrace, or for
  its end, waits a read or two), feature control, video subsystem enable (0x3C3).
- Sequencer 0x3C4/0x3C5, graphics controller 0x3CE/0x3CF (register 6 picks the text
  window: 0xB8000, 0xB0000 or 0xA0000), attribute controller 0x3C0/0x3C1 (its index/data
  flip-flop reset by reading input status 1; palette registers, mode control bit 3 for
  blink or bright backgrounds, colour select), and the DAC 0x3C6-0x3C9 (256 entries of
  6-bit red, green, blue, loaded with the BIOS's text palette).
The screen is 80x25 cells from the start address; addresses wrap inside the window, so a
start address past its end shows the window's beginning instead of reading elsewhere.
Everything else in 0x3B0-0x3DF reads 0xFF. Registers reset to the VGA BIOS's mode 3.
"""
from __future__ import annotations

import struct
import threading

from hvtui.errors import GuestMemoryError, SnapshotError
from hvtui.textscreen import BLANK, CELLS, ROWS, Cursor, TextScreen

BASE, SIZE = 0x3B0, 0x30

CRTC_REGS, SEQ_REGS, GC_REGS, ATTR_REGS = 25, 5, 9, 21
MODE3_CRTC = bytes([0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00,
                    0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF])
MODE3_SEQ = bytes([0x03, 0x00, 0x03, 0x00, 0x02])
MODE3_GC = bytes([0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF])
MODE3_ATTR = bytes([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D,
                    0x3E, 0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00])
MODE3_MISC = 0x67
# the bits each register keeps (a write keeps only these; restore refuses others)
SEQ_MASKS = bytes([0x03, 0x3D, 0x0F, 0x3F, 0x0E])
GC_MASKS = bytes([0x0F, 0x0F, 0x0F, 0x1F, 0x03, 0x7B, 0x0F, 0x0F, 0xFF])
ATTR_MASKS = bytes([0x3F] * 16 + [0xEF, 0xFF, 0x3F, 0x0F, 0x0F])

CR_CURSOR_START, CR_CURSOR_END, CR_MAX_SCAN = 0x0A, 0x0B, 0x09
CR_START_HI, CR_START_LO, CR_CURSOR_HI, CR_CURSOR_LO, CR_VRETRACE_END = 0x0C, 0x0D, 0x0E, 0x0F, 0x11
AMC, COLOUR_SELECT = 0x10, 0x14
STATUS_STEPS = (0x00, 0x01, 0x09, 0x01)       # input status 1: active, blank, retrace, blank
WINDOWS = ((0xA0000, 0x20000), (0xA0000, 0x10000), (0xB0000, 0x8000), (0xB8000, 0x8000))

# offsets from BASE
MONO_CRTC, MONO_STATUS = 0x04, 0x0A
ATTR_WRITE, ATTR_READ, MISC_WRITE, SUBSYS = 0x10, 0x11, 0x12, 0x13
SEQ_INDEX, SEQ_DATA, PEL_MASK, DAC_READ_INDEX, DAC_WRITE_INDEX, DAC_DATA = 0x14, 0x15, 0x16, 0x17, 0x18, 0x19
FEATURE_READ, MISC_READ, GC_INDEX, GC_DATA = 0x1A, 0x1C, 0x1E, 0x1F
COLOUR_CRTC, COLOUR_STATUS = 0x24, 0x2A

_STATE_KEYS = {"misc", "feature", "subsys", "status_step", "crtc", "crtc_index", "seq", "seq_index", "gc",
               "gc_index", "attr", "attr_index", "attr_data_next", "dac", "dac_read_index",
               "dac_write_index", "dac_component", "dac_reading", "pel_mask"}


def bios_dac() -> bytes:
    """The first 64 DAC entries as the VGA BIOS loads them for text modes (the EGA colours:
    bits 0-2 blue, green, red at 2/3 intensity, bits 3-5 the same at 1/3), the rest black."""
    out = bytearray(768)
    for i in range(64):
        for c, (hi, lo) in enumerate(((2, 5), (1, 4), (0, 3))):
            out[i * 3 + c] = 0x2A * ((i >> hi) & 1) + 0x15 * ((i >> lo) & 1)
    return bytes(out)


def write_bios_data(memory) -> None:
    """What a PC BIOS leaves in the BIOS data area for a text-mode kernel (the equipment
    word's 80x25 colour display, mode 3, 80 columns, 25 rows, the CRTC at 0x3D4, the
    cursor at the top left, characters of 16 scan lines), and a text window of blanks."""
    memory.write(0x410, struct.pack("<H", 0x0022))          # maths coprocessor, 80x25 colour
    memory.write(0x449, bytes([0x03]))                      # video mode 3
    memory.write(0x44A, struct.pack("<HHH", 80, 0x1000, 0))  # columns, page size, page offset
    memory.write(0x450, bytes(16))                          # cursor position of each page
    memory.write(0x460, struct.pack("<BBB", 0x0E, 0x0D, 0))  # cursor end, start; active page
    memory.write(0x463, struct.pack("<HBB", 0x3D4, 0x29, 0x30))   # CRTC base, mode, palette
    memory.write(0x484, struct.pack("<BHBB", ROWS - 1, 16, 0x60, 0x09))   # rows - 1, points, EGA bytes
    memory.write(0xB8000, struct.pack("<H", BLANK) * (0x8000 // 2))


class VgaText:
    SIZE = SIZE

    def __init__(self):
        self._lock = threading.Lock()
        self.misc, self.feature, self.subsys, self.status_step = MODE3_MISC, 0, 1, 0
        self.crtc, self.crtc_index = bytearray(MODE3_CRTC), 0
        self.seq, self.seq_index = bytearray(MODE3_SEQ), 0
        self.gc, self.gc_index = bytearray(MODE3_GC), 0
        self.attr, self.attr_index, self.attr_data_next = bytearray(MODE3_ATTR), 0x20, False
        self.dac = bytearray(bios_dac())
        self.dac_read_index = self.dac_write_index = self.dac_component = 0
        self.dac_reading = False
        self.pel_mask = 0xFF

    # ---- the bus ----
    def read(self, offset: int, size: int) -> int:
        with self._lock:
            return sum(self._read_byte(offset + i) << (8 * i) for i in range(size))

    def write(self, offset: int, size: int, value: int) -> None:
        with self._lock:
            for i in range(size):        # a 16-bit write to an index port: index, then data
                self._write_byte(offset + i, (value >> (8 * i)) & 0xFF)

    @property
    def colour(self) -> bool:
        """Miscellaneous output bit 0: the CRTC and status 1 answer at 0x3Dx, not 0x3Bx."""
        return bool(self.misc & 1)

    def _crtc_at(self, offset: int) -> int | None:
        base = COLOUR_CRTC if self.colour else MONO_CRTC
        return offset - base if base <= offset < base + 2 else None

    def _read_byte(self, offset: int) -> int:
        crtc = self._crtc_at(offset)
        if crtc == 0:
            return self.crtc_index
        if crtc == 1:
            return self.crtc[self.crtc_index] if self.crtc_index < CRTC_REGS else 0xFF
        if offset == (COLOUR_STATUS if self.colour else MONO_STATUS):
            self.attr_data_next = False
            self.status_step = (self.status_step + 1) % len(STATUS_STEPS)
            return STATUS_STEPS[self.status_step]
        if offset == ATTR_WRITE:
            return self.attr_index
        if offset == ATTR_READ:
            i = self.attr_index & 0x1F
            return self.attr[i] if i < ATTR_REGS else 0
        if offset == MISC_WRITE:
            return 0x00                                  # input status 0
        if offset == SUBSYS:
            return self.subsys
        if offset == SEQ_INDEX:
            return self.seq_index
        if offset == SEQ_DATA:
            return self.seq[self.seq_index] if self.seq_index < SEQ_REGS else 0xFF
        if offset == PEL_MASK:
            return self.pel_mask
        if offset == DAC_READ_INDEX:
            return 0x03 if self.dac_reading else 0x00    # DAC state
        if offset == DAC_WRITE_INDEX:
            return self.dac_write_index
        if offset == DAC_DATA:
            value = self.dac[self.dac_read_index * 3 + self.dac_component]
            self._dac_step("dac_read_index")
            return value
        if offset == FEATURE_READ:
            return self.feature
        if offset == MISC_READ:
            return self.misc
        if offset == GC_INDEX:
            return self.gc_index
        if offset == GC_DATA:
            return self.gc[self.gc_index] if self.gc_index < GC_REGS else 0xFF
        return 0xFF

    def _dac_step(self, index_name: str) -> None:
        self.dac_component += 1
        if self.dac_component == 3:
            self.dac_component = 0
            setattr(self, index_name, (getattr(self, index_name) + 1) & 0xFF)

    def _write_byte(self, offset: int, v: int) -> None:
        crtc = self._crtc_at(offset)
        if crtc == 0:
            self.crtc_index = v & 0x3F
        elif crtc == 1:
            i = self.crtc_index
            if i >= CRTC_REGS:
                return
            if i < 8 and self.crtc[CR_VRETRACE_END] & 0x80:   # write-protected
                if i == 7:    # ... except the line compare bit 8
                    self.crtc[7] = (self.crtc[7] & ~0x10) | (v & 0x10)
                return
            self.crtc[i] = v
        elif offset in (COLOUR_STATUS, MONO_STATUS):
            self.feature = v & 0x0B
        elif offset == ATTR_WRITE:
            if self.attr_data_next:
                i = self.attr_index & 0x1F
                if i < ATTR_REGS:
                    self.attr[i] = v & ATTR_MASKS[i]
            else:
                self.attr_index = v & 0x3F
            self.attr_data_next = not self.attr_data_next
        elif offset == MISC_WRITE:
            self.misc = v
        elif offset == SUBSYS:
            self.subsys = v & 1
        elif offset == SEQ_INDEX:
            self.seq_index = v & 0x07
        elif offset == SEQ_DATA:
            if self.seq_index < SEQ_REGS:
                self.seq[self.seq_index] = v & SEQ_MASKS[self.seq_index]
        elif offset == PEL_MASK:
            self.pel_mask = v
        elif offset == DAC_READ_INDEX:
            self.dac_read_index, self.dac_component, self.dac_reading = v, 0, True
        elif offset == DAC_WRITE_INDEX:
            self.dac_write_index, self.dac_component, self.dac_reading = v, 0, False
        elif offset == DAC_DATA:
            self.dac[self.dac_write_index * 3 + self.dac_component] = v & 0x3F
            self._dac_step("dac_write_index")
        elif offset == GC_INDEX:
            self.gc_index = v & 0x0F
        elif offset == GC_DATA:
            if self.gc_index < GC_REGS:
                self.gc[self.gc_index] = v & GC_MASKS[self.gc_index]

    # ---- the screen ----
    def window(self) -> tuple[int, int]:
        """(guest-physical base, size) of the text window graphics register 6 selects."""
        return WINDOWS[(self.gc[6] >> 2) & 3]

    def palette(self) -> tuple:
        """The 16 colours of attribute nibbles: palette register -> colour select -> DAC."""
        amc, select = self.attr[AMC], self.attr[COLOUR_SELECT]
        out = []
        for c in range(16):
            p = self.attr[c]
            if amc & 0x80:       # P5-P4 from the colour select register
                index = ((select & 0x0C) << 4) | ((select & 0x03) << 4) | (p & 0x0F)
            else:
                index = ((select & 0x0C) << 4) | (p & 0x3F)
            index &= self.pel_mask
            r, g, b = self.dac[index * 3:index * 3 + 3]
            out.append((r * 255 // 63, g * 255 // 63, b * 255 // 63))
        return tuple(out)

    def _cursor(self, start: int, window_cells: int) -> Cursor | None:
        cr = self.crtc
        height = (cr[CR_MAX_SCAN] & 0x1F) + 1
        first, last = cr[CR_CURSOR_START] & 0x1F, cr[CR_CURSOR_END] & 0x1F
        if cr[CR_CURSOR_START] & 0x20 or first > last or first >= height:
            return None
        where = ((cr[CR_CURSOR_HI] << 8 | cr[CR_CURSOR_LO]) - start) % window_cells
        if where >= CELLS:
            return None
        return Cursor(where % 80, where // 80, first, min(last, height - 1), height)

    def screen(self, memory) -> TextScreen:
        """The screen as the registers describe it, its cells read from guest memory
        (blank where the window is not guest RAM)."""
        with self._lock:
            base, size = self.window()
            cells_in_window = size // 2
            start = (self.crtc[CR_START_HI] << 8 | self.crtc[CR_START_LO]) % cells_in_window
            cursor = self._cursor(start, cells_in_window)
            palette = self.palette()
            blink = bool(self.attr[AMC] & 0x08)
            enabled = bool(self.attr_index & 0x20) and not self.seq[1] & 0x20
        offset, want = start * 2, CELLS * 2
        try:
            first = memory.read(base + offset, min(want, size - offset))
            cells = first + (memory.read(base, want - len(first)) if len(first) < want else b"")
        except GuestMemoryError:
            return TextScreen.blank()
        return TextScreen(cells, cursor, palette, blink, enabled)

    # ---- snapshots ----
    def save(self) -> dict:
        with self._lock:
            return {"misc": self.misc, "feature": self.feature, "subsys": self.subsys,
                    "status_step": self.status_step, "crtc": bytes(self.crtc), "crtc_index": self.crtc_index,
                    "seq": bytes(self.seq), "seq_index": self.seq_index, "gc": bytes(self.gc),
                    "gc_index": self.gc_index, "attr": bytes(self.attr), "attr_index": self.attr_index,
                    "attr_data_next": self.attr_data_next, "dac": bytes(self.dac),
                    "dac_read_index": self.dac_read_index, "dac_write_index": self.dac_write_index,
                    "dac_component": self.dac_component, "dac_reading": self.dac_reading,
                    "pel_mask": self.pel_mask}

    def restore(self, state: dict) -> None:
        """Put back what save() returned, refusing anything no guest write could produce."""
        if not isinstance(state, dict):
            raise SnapshotError(f"VGA state must be a dict, not {type(state).__name__}")
        missing, extra = _STATE_KEYS - state.keys(), state.keys() - _STATE_KEYS
        if missing or extra:
            raise SnapshotError(f"VGA state: missing {sorted(missing)}, unexpected {sorted(map(str, extra))}")

        def integer(key, limit):
            v = state[key]
            if type(v) is not int or not 0 <= v <= limit:
                raise SnapshotError(f"VGA state: {key} must be an int 0-{limit:#x}, not {v!r}")
            return v

        def flag(key):
            if type(state[key]) is not bool:
                raise SnapshotError(f"VGA state: {key} must be a bool, not {state[key]!r}")
            return state[key]

        def registers(key, masks):
            v = state[key]
            if not isinstance(v, (bytes, bytearray)) or len(v) != len(masks):
                raise SnapshotError(f"VGA state: {key} must be {len(masks)} bytes")
            bad = [i for i, (b, m) in enumerate(zip(v, masks)) if b & ~m]
            if bad:
                raise SnapshotError(f"VGA state: {key} register {bad[0]:#x} holds bits no write can set")
            return bytearray(v)

        new = dict(misc=integer("misc", 0xFF), feature=integer("feature", 0x0B), subsys=integer("subsys", 1),
                   status_step=integer("status_step", len(STATUS_STEPS) - 1),
                   crtc=registers("crtc", b"\xff" * CRTC_REGS), crtc_index=integer("crtc_index", 0x3F),
                   seq=registers("seq", SEQ_MASKS), seq_index=integer("seq_index", 7),
                   gc=registers("gc", GC_MASKS), gc_index=integer("gc_index", 0x0F),
                   attr=registers("attr", ATTR_MASKS), attr_index=integer("attr_index", 0x3F),
                   attr_data_next=flag("attr_data_next"), dac=registers("dac", b"\x3f" * 768),
                   dac_read_index=integer("dac_read_index", 0xFF), dac_write_index=integer("dac_write_index", 0xFF),
                   dac_component=integer("dac_component", 2), dac_reading=flag("dac_reading"),
                   pel_mask=integer("pel_mask", 0xFF))
        with self._lock:
            for key, value in new.items():
                setattr(self, key, value)
