"""Every boot protocol against files broken on purpose, as a user would meet them with
`hvtui run`: one clear line on stderr, exit status 1, nothing on stdout, no guest and no
log created. And the same synthetic kernels unbroken: each starts in its entry state and
reaches the debug-exit port."""
import subprocess
import sys

import pytest

import kernels

pytestmark = pytest.mark.kvm


def run(tmp_path, image: bytes, *args, name="k.bin", files=None):
    path = tmp_path / name
    path.write_bytes(image)
    for fname, data in (files or {}).items():
        (tmp_path / fname).write_bytes(data)
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "hvtui", "run", str(path), "--log-dir", str(logs), "--timeout", "30", *args]
    r = subprocess.run(cmd, capture_output=True, timeout=60, cwd=tmp_path)
    return r, logs


@pytest.mark.parametrize("image", [
    kernels.mb1_elf(), kernels.mb1_aout(), kernels.mb2_elf(), kernels.pvh(), kernels.bzimage(),
    kernels.mb2_elf(tags=[(1, 0, (1).to_bytes(4, "little") + (6).to_bytes(4, "little"))]),
], ids=["mb1-elf", "mb1-aout", "mb2", "pvh", "bzimage", "mb2-info-request"])
def test_each_protocol_enters_its_kernel(tmp_path, image):
    r, _ = run(tmp_path, image)
    assert r.returncode == 42, r.stderr


TOO_LONG = "x" * 3000
CASES = [
    # Multiboot 1
    ("mb1 bad checksum", kernels.mb1_elf(checksum=1), (), "no Multiboot header or PVH note"),
    ("mb1 bad magic", kernels.mb1_elf(magic=0x1BADB003), (), "no Multiboot header or PVH note"),
    ("mb1 video", kernels.mb1_elf(flags=0x7), (), r"requires a graphics mode \(flag 2\)"),
    ("mb1 unknown flag", kernels.mb1_elf(flags=0x23), (), "requires feature flag 5"),
    ("mb1 truncated elf", kernels.mb1_elf()[:0x1010], (), "outside|beyond the end of the file|not a valid ELF"),
    ("mb1 elf below 1 MiB", kernels.elf32(paddr=0x1000, head=kernels.mb1_header() + bytes(4)), (),
     "outside the guest's usable RAM"),
    ("mb1 elf over the hole", kernels.elf32(paddr=0xC0000000, head=kernels.mb1_header() + bytes(4)), (),
     "outside the guest's usable RAM"),
    ("mb1 elf entry outside", kernels.elf32(entry=0x300000, head=kernels.mb1_header() + bytes(4)), (),
     "entry point 0x300000 is outside"),
    ("mb1 aout load above header", kernels.mb1_aout(header=0x1FF000), (), "load_addr 0x200000 is above header_addr"),
    ("mb1 aout load_end beyond file", kernels.mb1_aout(load_end=0x300000), (), "load_end_addr 0x300000 is outside the file"),
    ("mb1 aout bss below end", kernels.mb1_aout(bss_end=0x200004), (), "bss_end_addr 0x200004 is below"),
    ("mb1 aout entry outside", kernels.mb1_aout(entry=0x400000), (), "entry_addr 0x400000 is outside"),
    ("mb1 aout truncated header", kernels.mb1_aout(truncate=20), (), "header truncated"),
    ("mb1 aout over the hole", kernels.mb1_aout(load=0xD0000000), (), "outside the guest's usable RAM"),
    ("mb1 aout beyond RAM", kernels.mb1_aout(load=0x8000000), (), "outside the guest's usable RAM"),
    ("mb1 module too large", kernels.mb1_elf(), ("--memory", "4", "--initrd", "big"), "does not fit in guest RAM"),
    ("mb1 module missing", kernels.mb1_elf(), ("--initrd", "missing.bin"), "missing.bin: no such file"),
    # Multiboot 2
    ("mb2 bad checksum", kernels.mb2_elf(checksum=5), (), "no Multiboot header or PVH note"),
    ("mb2 arch", kernels.mb2_elf(arch=4), (), "architecture 4, not i386"),
    ("mb2 length past file", kernels.mb2_elf(length=0x100000), (), "header_length 1048576 is outside the file"),
    ("mb2 no end tag", kernels.mb2_elf(tags=[(4, 0, bytes(8))], end=False), (), "no end tag"),
    ("mb2 framebuffer", kernels.mb2_elf(tags=[(5, 0, bytes(12))]), (), r"requires a framebuffer \(header tag 5\)"),
    ("mb2 efi", kernels.mb2_elf(tags=[(7, 0, b"")]), (), "requires EFI boot services"),
    ("mb2 info request", kernels.mb2_elf(tags=[(1, 0, (8).to_bytes(4, "little"))]), (),
     "requires framebuffer information"),
    ("mb2 unknown tag", kernels.mb2_elf(tags=[(42, 0, b"")]), (), "required tag 42"),
    ("mb2 bad tag size", kernels.elf32(head=kernels.mb2_header(tags=[(4, 0, b"")], bad_size=2)), (),
     "header tag 4 has a bad size 2"),
    # PVH
    ("pvh entry outside", kernels.pvh(entry=0x500000), (), "PVH entry point 0x500000 is outside"),
    ("pvh below 1 MiB", kernels.pvh(entry=0x8000, paddr=0x8000), (), "outside the guest's usable RAM"),
    ("pvh beyond RAM", kernels.pvh(entry=0x8000000, paddr=0x8000000), (), "outside the guest's usable RAM"),
    ("pvh truncated", kernels.pvh()[:0x1004], (), "beyond the end of the file|not a valid ELF"),
    ("pvh cmdline too long", kernels.pvh(), ("--append", TOO_LONG + TOO_LONG), "command line longer than 4095"),
    ("pvh initrd too large", kernels.pvh(), ("--memory", "4", "--initrd", "big"), "the initrd"),
    # Linux bzImage
    ("bz old protocol", kernels.bzimage(version=0x0204), (), "boot protocol 2.04 is older than 2.06"),
    ("bz boot flag", kernels.bzimage(boot_flag=0x1234), (), "signature 0xAA55 missing"),
    ("bz no 64-bit entry", kernels.bzimage(xloadflags=0), (), "no 64-bit entry point"),
    ("bz zImage", kernels.bzimage(loadflags=0), (), "a zImage"),
    ("bz truncated header", kernels.bzimage()[:0x220], (), "truncated Linux setup header"),
    ("bz truncated kernel", kernels.bzimage(truncate=1024 + 0x100), (), "truncated bzImage"),
    ("bz too big for RAM", kernels.bzimage(init_size=0x8000000), ("--memory", "64"), "the kernel needs 128 MiB"),
    ("bz cmdline too long", kernels.bzimage(cmdline_size=64), ("--append", "y" * 100),
     "the command line is .* bytes .*at most 64"),
    ("bz initrd too large", kernels.bzimage(), ("--memory", "20", "--initrd", "big"), "the initrd"),
    ("bz initrd_addr_max", kernels.bzimage(initrd_max=0x1FFFFFF), ("--memory", "64", "--initrd", "small"),
     "the initrd"),
]


@pytest.mark.parametrize("what, image, args, message", CASES, ids=[c[0] for c in CASES])
def test_broken_kernels_get_one_line_and_nothing_is_created(tmp_path, what, image, args, message):
    import re
    files = {"big": bytes(8 << 20), "small": bytes(16 << 20)}
    r, logs = run(tmp_path, image, *args, files=files)
    err = r.stderr.decode()
    assert r.returncode == 1, (what, r.returncode, err)
    assert r.stdout == b""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not logs.exists() or not any(logs.iterdir())      # no guest was created
