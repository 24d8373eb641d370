"""Each boot protocol proved from the inside, on real KVM: the test kernels of guests/pc/
print what they were given (memory map, command line, each module's size and FNV-1a, their
own load address, the boot loader's name) and the test compares it with what hvtui was
asked to give them and with the files on the host. The SMP kernel finds every vCPU in the
MP table and brings each AP up with INIT/SIPI."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hvtui import images
from hvtui.vmm.boot import pc

pytestmark = pytest.mark.kvm

PROTOCOLS = {   # image -> (protocol line, magic, load address, Multiboot?)
    "mb1": ("mb1", 0x2BADB002, 0x100000, True),
    "mb1-aout": ("mb1-aout", 0x2BADB002, 0x200000, True),
    "mb2": ("mb2", 0x36D76289, 0x100000, True),
    "pvh": ("pvh", 0x336EC578, 0x100000, False),
    "bzimage": ("bzimage", 0x53726448, 0x1000000, False),
}


def fnv1a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def run(image: str, *args, tmp_path):
    cmd = [sys.executable, "-m", "hvtui", "run", images.resolve(image), "--log-dir", str(tmp_path),
           "--timeout", "60", *args]
    r = subprocess.run(cmd, capture_output=True, timeout=90)
    return r, r.stdout.decode().replace("\r", "").splitlines()


def report(lines: list[str]) -> dict:
    """The kernel's `boot:` lines as a dict (mem and module lines as lists)."""
    out: dict = {"mem": [], "module": []}
    for line in lines:
        if not line.startswith("boot: "):
            continue
        key, _, rest = line[6:].partition(" ")
        if key == "mem":
            base, length, typ = rest.split()
            out["mem"].append((int(base, 16), int(length, 16), int(typ)))
        elif key == "module":
            f = rest.split(" ", 8)
            out["module"].append({"start": int(f[2], 16), "size": int(f[4]), "fnv": int(f[6], 16),
                                  "cmdline": f[8] if len(f) > 8 else ""})
        else:
            out[key] = rest
    return out


@pytest.fixture
def modules(tmp_path):
    """Two module files with different contents (the second not a multiple of 4 bytes)."""
    a, b = tmp_path / "mod-a.bin", tmp_path / "mod-b.txt"
    a.write_bytes(os.urandom(5000))
    b.write_bytes(b"the second module\n")
    return a, b


@pytest.mark.parametrize("memory", [64, 3584])
@pytest.mark.parametrize("image", PROTOCOLS)
def test_each_protocol_gets_exactly_what_hvtui_gave(tmp_path, modules, image, memory):
    name, magic, load, multiboot = PROTOCOLS[image]
    a, b = modules
    append = "console=ttyS0  two  spaces"
    r, lines = run(image, "--memory", str(memory), "--append", append, "--initrd", f"{a} first arg,{b}",
                   tmp_path=tmp_path)
    assert r.returncode == 0, (lines, r.stderr)
    got = report(lines)
    assert got["protocol"] == name and got["done"] == ""
    assert int(got["magic"], 16) == magic
    assert int(got["load"], 16) == load
    assert got["mem"] == pc.memory_map(memory << 20)
    if multiboot:
        assert got["cmdline"] == f"{images.resolve(image)} {append}"
        lower, upper = pc.mem_lower_upper_kib(memory << 20)
        assert got["meminfo"] == f"lower {lower} upper {upper}"
        assert got["loader"] == "hvtui"
        mods = got["module"]
        assert [m["cmdline"] for m in mods] == [f"{a} first arg", str(b)]
        assert [(m["size"], m["fnv"]) for m in mods] == [(len(p.read_bytes()), fnv1a(p.read_bytes())) for p in (a, b)]
        assert all(m["start"] % 4096 == 0 and m["start"] >= 0x100000 for m in mods)   # page aligned, not page 0
    else:
        # Linux-style: the virtio-mmio devices announced; both files as one initrd (cpio pads to 4)
        assert got["cmdline"] == f"{append} virtio_mmio.device=4K@0xd0001000:6"
        data = a.read_bytes() + bytes(-len(a.read_bytes()) % 4) + b.read_bytes() + bytes(-len(b.read_bytes()) % 4)
        (mod,) = got["module"]
        assert (mod["size"], mod["fnv"]) == (len(data), fnv1a(data))
        assert mod["start"] % 4096 == 0 and mod["start"] + mod["size"] <= min(memory << 20, 3 << 30)
        assert "loader" not in got and "meminfo" not in got


def test_no_modules_and_an_empty_command_line(tmp_path):
    r, lines = run("mb1", tmp_path=tmp_path)
    got = report(lines)
    assert r.returncode == 0 and got["cmdline"] == images.resolve("mb1") and got["module"] == []
    r, lines = run("bzimage", tmp_path=tmp_path)
    got = report(lines)
    assert r.returncode == 0 and got["cmdline"] == "virtio_mmio.device=4K@0xd0001000:6" and got["module"] == []


def test_a_user_announced_virtio_device_is_not_announced_twice(tmp_path):
    r, lines = run("pvh", "--append", "virtio_mmio.device=4K@0xd0001000:6 x", tmp_path=tmp_path)
    assert r.returncode == 0 and report(lines)["cmdline"] == "virtio_mmio.device=4K@0xd0001000:6 x"


@pytest.mark.parametrize("vcpus", [1, 2, 4])
def test_smp_kernel_finds_every_vcpu_and_starts_each_ap(tmp_path, vcpus):
    r, lines = run("smp", "--vcpus", str(vcpus), tmp_path=tmp_path)
    assert r.returncode == 0, (lines, r.stderr)
    assert lines[0] == f"smp: mptable cpus {vcpus} ioapic {vcpus}"
    assert lines[1:-1] == [f"smp: cpu {i} apic {i} up" for i in range(1, vcpus)]
    assert lines[-1] == f"smp: all {vcpus} up"


def test_bzimage_zero_page_describes_the_vga_text_mode(tmp_path):
    """screen_info as the bzImage test kernel reads it from its zero page: the BIOS's 80x25
    colour text mode with the cursor at the top left, what Linux's vgacon needs to start."""
    r, lines = run("bzimage", tmp_path=tmp_path)
    assert r.returncode == 0, (lines, r.stderr)
    assert report(lines)["screen"] == "x 0 y 0 page 0 mode 3 cols 80 lines 25 ega_bx 0x0003 vga 1 points 16"
