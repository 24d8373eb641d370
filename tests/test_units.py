"""Unit tests of the parts that need no KVM: bus, memory bounds, loader checks, reports."""
import struct

import pytest

from hvtui import images
from hvtui._core import ffi
from hvtui.errors import GuestMemoryError, ImageError
from hvtui.vmm import layout
from hvtui.vmm.devices.bus import Bus
from hvtui.vmm.devices.scratch import ScratchRegister
from hvtui.vmm.exits import CrashReport, emulation_bytes
from hvtui.vmm import boot
from hvtui.vmm.memory import GuestMemory

import kernels


@pytest.fixture
def memory():
    buf = ffi.new("char[]", 4 << 20)
    m = GuestMemory()
    m.add(0, 4 << 20, buf)
    m._keepalive = buf
    return m


def test_memory_bounds(memory):
    memory.write(0x1000, b"abc")
    assert memory.read(0x1000, 3) == b"abc"
    with pytest.raises(GuestMemoryError):
        memory.read((4 << 20) - 2, 4)          # straddles the end
    with pytest.raises(GuestMemoryError):
        memory.write(-1, b"x")
    with pytest.raises(GuestMemoryError):
        memory.view(0xFFFF_FFFF_F000, 0x2000)   # nowhere near RAM
    assert memory.read((4 << 20) - 4, 4) == bytes(4)   # the last bytes are fine


@pytest.mark.parametrize("by_address", [False, True], ids=["bisect", "port-table"])
def test_bus_dispatch_and_overlap(by_address):
    bus = Bus("port", by_address=by_address)
    dev, other = ScratchRegister(), ScratchRegister()
    bus.add(0x510, 4, dev)
    bus.add(0x508, 8, other)                   # below it, added after it
    assert bus.find(0x512, 2) == (dev, 2)
    assert bus.find(0x513, 2) is None          # runs past the device
    assert bus.find(0x50F) == (other, 7) and bus.find(0x50F, 2) is None
    assert bus.find(0x507) is None and bus.find(0x514) is None
    with pytest.raises(ValueError):
        bus.add(0x512, 4, ScratchRegister())
    assert bus.find(0x512, 1) == (dev, 2)      # a refused add changes nothing
    if by_address:                             # the exit path's lookup: (device, offset, room)
        assert bus.owner(0x511) == (dev, 1, 3) and bus.owner(0x514) is None


def test_a_module_goes_from_its_file_into_memory_checked(memory, tmp_path):
    """boot.Module: the bytes land where asked, in chunks; a window past RAM is refused
    before anything is read; a file that shrank since it was opened is one line."""
    path = tmp_path / "initrd"
    data = bytes(range(256)) * (3 << 12) + b"tail"     # 3 MiB and 4 bytes
    path.write_bytes(data)
    m = boot.Module(str(path), f"{path} arg")
    m.CHUNK = 1 << 20                                  # four reads
    try:
        assert m.size == len(data) and m.string.endswith(" arg")
        m.copy_to(memory, 0x1000)
        assert memory.read(0x1000, m.size) == data
        with pytest.raises(GuestMemoryError):
            m.copy_to(memory, (4 << 20) - 4096)        # would run past the end of RAM
        with open(path, "r+b") as f:
            f.truncate(1 << 20)
        with pytest.raises(ImageError, match=r"ends at byte 1048576, not 3145732: it changed while"):
            m.copy_to(memory, 0)
    finally:
        m.close()
    with pytest.raises(ImageError, match="is a directory, not a module or initrd file"):
        boot.Module(str(tmp_path), "dir")


def load_elf(path: str, memory: GuestMemory, low_end: int, vcpus: int) -> boot.Boot:
    """The boot path of a tiny guest, on plain memory (no KVM)."""
    image = boot.read_file(path)
    ctx = boot.BootContext(kernel_path=path, image=image, cmdline="", modules=[], memory=memory,
                           ram_size=low_end, low_end=low_end, high_size=0, vcpus=vcpus)
    return boot.load(ctx)


def test_scratch_register_widths():
    r = ScratchRegister()
    r.write(0, 4, 0x11223344)
    assert r.read(0, 1) == 0x44 and r.read(1, 2) == 0x2233 and r.read(0, 4) == 0x11223344
    r.write(2, 1, 0xAA)
    assert r.read(0, 4) == 0x11AA3344


def _elf(cls=2, machine=62, etype=2, entry=0x100000, paddr=0x100000, filesz=16, memsz=16):
    """A minimal ELF with one PT_LOAD segment."""
    ident = b"\x7fELF" + bytes([cls, 1, 1]) + bytes(9)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", etype, machine, 1, entry, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0x1000, paddr, paddr, filesz, memsz, 0x1000)
    body = ehdr + phdr
    return body + bytes(0x1000 - len(body)) + b"\x90" * filesz


@pytest.mark.parametrize("kwargs, message", [
    ({"cls": 1}, "32-bit|not a valid ELF"),
    ({"machine": 183}, "not x86"),
    ({"etype": 3}, "ET_DYN"),
    ({"paddr": 0x1000, "entry": 0x1000}, "outside the guest's usable RAM"),
    ({"paddr": 0x3F0000, "memsz": 0x100000}, "outside the guest's usable RAM"),
    ({"entry": 0x200000}, "entry point"),
    ({"filesz": 32, "memsz": 16}, "file size exceeds"),
])
def test_loader_refuses_bad_elf(tmp_path, memory, kwargs, message):
    path = tmp_path / "bad.elf"
    path.write_bytes(_elf(**kwargs))
    before = memory.read(0x100000, 64)
    with pytest.raises(ImageError, match=message):
        load_elf(str(path), memory, 4 << 20, 1)
    assert memory.read(0x100000, 64) == before   # nothing was written


def test_loader_refuses_garbage_and_truncation(tmp_path, memory):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an elf at all")
    with pytest.raises(ImageError, match="not a kernel hvtui can boot"):
        load_elf(str(junk), memory, 4 << 20, 1)
    cut = tmp_path / "cut.elf"
    cut.write_bytes(_elf()[:80])
    with pytest.raises(ImageError):
        load_elf(str(cut), memory, 4 << 20, 1)
    with pytest.raises(ImageError, match="no such file"):
        load_elf(str(tmp_path / "missing.elf"), memory, 4 << 20, 1)


def test_loader_loads_good_elf(tmp_path, memory):
    path = tmp_path / "ok.elf"
    path.write_bytes(_elf(filesz=8, memsz=0x2000))
    img = load_elf(str(path), memory, 4 << 20, 1)
    assert img.entries[0].rip == 0x100000 and img.load_end == 0x102000
    assert memory.read(0x100000, 9) == b"\x90" * 8 + b"\0"


def test_resolve_images(tmp_path):
    with pytest.raises(ImageError, match="unknown image 'nope'"):
        images.resolve("nope")
    with pytest.raises(ImageError, match="no such file"):
        images.resolve(str(tmp_path / "x.elf"))
    for name in images.BUILTINS:
        assert images.resolve(name).endswith(images.BUILTINS[name].filename)


def test_emulation_bytes_and_report():
    # what KVM reported for an int3 on KVM-PVM: flags=1, then size 15 and the bytes
    info = [1, 0x501B6AE08948CC0F, 0x48236A0000300268]
    assert emulation_bytes(info, 3)[:4] == bytes.fromhex("cc4889e0")
    assert emulation_bytes([0, 0], 2) == b""
    r = CrashReport("triple fault", vcpu=1, registers={"rip": 0x101000, "rflags": 0x46}, instruction=b"\x0f\x0b")
    assert "triple fault (vcpu 1, rip=0x101000)" in r.summary()
    assert "0f 0b" in r.format()


def test_layout_is_consistent():
    assert layout.BOOT_INFO.size <= layout.BOOT_INFO_STRIDE
    assert layout.PD_ADDR + layout.MAX_MAPPED_GIB * 4096 <= layout.PD_LIMIT <= layout.BOOT_INFO_ADDR
    assert layout.split_ram(4 << 30) == (3 << 30, 1 << 30)
    assert layout.mapped_gib(64 << 20) == 4 and layout.mapped_gib(6 << 30) == 7


def test_elf_reader_of_any_bytes_returns_an_image_or_one_image_error():
    """The struct ELF reader (boot/elf.py) on a valid file with any bytes overwritten or cut
    off: an ElfImage, or ImageError; never another exception. The notes reader: a list."""
    from hypothesis import given, settings, strategies as st
    from hvtui.vmm.boot import elf
    samples = [_elf(), kernels.pvh(), kernels.mb1_elf()]     # 64-bit, 64-bit with notes, 32-bit

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(samples), st.lists(st.tuples(st.integers(0, 0x1100), st.integers(0, 255)), max_size=8),
           st.integers(0, 0x2000))
    def check(sample, pokes, cut):
        data = bytearray(sample)
        for at, value in pokes:
            if at < len(data):
                data[at] = value
        data = bytes(data[:cut])
        try:
            image = elf.parse("k", data)
        except ImageError as e:
            assert str(e).startswith("k: ") and "\n" not in str(e)
        else:
            assert all(s.paddr >= 0 and len(s.data) <= s.memsz for s in image.segments)
        assert isinstance(elf.notes(data), list)
    check()


def test_busy_silence_is_judged_over_the_whole_silence():
    """A vCPU silent 8 s is computing if its thread used a fair share of a core over those
    8 s, however little it got in the last interval (a loaded host); not if it used none."""
    from types import SimpleNamespace

    from hvtui.host import busy_silence_s
    guest = SimpleNamespace(last_exit_at={0: 100.0}, cpu_at_last_exit={0: 50.0})
    def vcpu(cpu_s):
        return SimpleNamespace(index=0, cpu_s=cpu_s)
    assert busy_silence_s(guest, vcpu(50.0 + 8 * 0.4), 108.0) == 8.0     # 40% of a core
    assert busy_silence_s(guest, vcpu(50.05), 108.0) == 0.0              # waiting, not busy
    assert busy_silence_s(guest, vcpu(None), 108.0) == 0.0               # its thread not running
    assert busy_silence_s(guest, vcpu(50.0), 100.0) == 0.0               # an exit just now
