"""A real Linux kernel booted by `hvtui run`, as a user runs it: Debian's cloud kernel
(pinned, fetched once into a cache by tests/linux_kernel.py), through the bzImage loader and
through the PVH loader. On KVM-PVM (no VT-x/AMD-V; guest CPL 0 is emulated) each boot takes
a minute or two, so these tests carry the `linux` marker (`-m "not linux"` leaves them out). They
skip, with the reason, when the pinned package is gone from the archive; see
../shared/LINUX-ON-KVM-PVM.md for what this kernel can and cannot do here.

The initramfs builder's own tests at the end are fast and need neither KVM nor network."""
from __future__ import annotations

import contextlib
import gzip
import os
import platform
import re
import signal
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

import linux_kernel

MEMORY_MIB = 256

# LINUX-ON-KVM-PVM.md's command line without `quiet loglevel=4` (the tests read the info
# lines) and without `cmos_init` in initcall_blacklist (the RTC must be probed).
CLEARCPUID = ("cx16,popcnt,abm,bmi1,bmi2,movbe,fsgsbase,rdrand,rdseed,pku,smap,rdpid,rdtscp,"
              "sse4_1,sse4_2,ssse3")
INITCALL_BLACKLIST = (
    "ftrace_check_for_weak_functions,load_system_certificate_list,trace_eval_init,init_ima,"
    "tracer_init_tracefs,blake2s_mod_init,cubictcp_register,bpf_rstat_kfunc_init,"
    "bpf_key_sig_kfuncs_init,kfunc_init,bpf_prog_test_run_init,bpf_tcp_ca_kfunc_init,"
    "crypto_kdf108_init,init_encrypted")
CMDLINE = (
    f"console=ttyS0 noxsave mitigations=off clearcpuid={CLEARCPUID} cryptomgr.notests "
    f"init_on_alloc=0 lsm=capability audit=0 nowatchdog tsc=reliable no_timer_check "
    f"8250.nr_uarts=1 i8042.noaux ipv6.disable=1 initcall_blacklist={INITCALL_BLACKLIST} "
    f"panic=-1 reboot=a")
# The bzImage boot also has Linux's VT console, which vgacon puts on the VGA text screen
# (screen_info from the zero page); ttyS0 stays the last console=, so /dev/console is COM1.
CMDLINE_BZIMAGE = f"console=tty0 {CMDLINE}"

# The monitor's e820 map for 256 MiB as the kernel prints it (every BIOS-e820 line, in
# order): RAM, the EBDA, the BIOS area (ACPI tables), RAM from 1 MiB, the MMIO hole.
E820_BZIMAGE = [
    "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
    "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
    "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] reserved",
    f"BIOS-e820: [mem 0x0000000000100000-0x{MEMORY_MIB * 2**20 - 1:016x}] usable",
    "BIOS-e820: [mem 0x00000000c0000000-0x00000000ffffffff] reserved",
]
# On the PVH path the kernel itself adds the ISA hole 0xa0000-0xfffff as reserved
# (init_pvh_bootparams()), which merges the EBDA and the BIOS area into one range.
E820_PVH = [*E820_BZIMAGE[:1], "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved",
            *E820_BZIMAGE[3:]]
# hvtui announces its virtio-mmio devices on the command line, as Firecracker does: the
# virtio-console at 0xd0001000, IRQ 6 (this kernel has VIRTIO_MMIO as a module: unused)
VIRTIO_ANNOUNCED = " virtio_mmio.device=4K@0xd0001000:6"
BANNER = f"Linux version {linux_kernel.KERNEL_RELEASE} "

# hvtui's own --timeout for each boot (the subprocess and pytest limits are a bit larger):
# about 4x what they take on the 2-core KVM-PVM machines (bzImage 76 s, PVH 97 s), and
# together under 12 minutes should both hang.
BZIMAGE_TIMEOUT_S = 300
PVH_TIMEOUT_S = 400


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="session")
def linux_kernel_files(pytestconfig):
    """The pinned kernel, its patched vmlinux and the ud2 initramfs (cached across runs)."""
    t0 = time.monotonic()
    try:
        k = linux_kernel.prepare()
    except linux_kernel.Unavailable as e:
        pytest.skip(str(e))
    note(pytestconfig, f"kernel fixture ready in {time.monotonic() - t0:.1f} s (cache {k.cache})")
    return k


@pytest.fixture
def kernel(request, _kvm_gate):
    """linux_kernel_files, asked for only once the KVM gate has passed (a host without KVM
    skips without downloading anything)."""
    return request.getfixturevalue("linux_kernel_files")


def note(config, msg: str) -> None:
    """A line on the terminal even without -s: the boot-time figures."""
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
        sys.stderr.write(f"\n[linux] {msg}\n")
        sys.stderr.flush()


class Boot:
    """One `hvtui run` of a kernel: exit status, console lines, timings."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes, seconds: float,
                 first_output_s: float | None, log):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr.decode(errors="replace")
        self.seconds, self.first_output_s, self.log = seconds, first_output_s, log
        text = stdout.decode(errors="replace").replace("\r", "")
        # the kernel's lines without their printk time stamps
        self.lines = [re.sub(r"^\[\s*\d+\.\d+\] ?", "", ln) for ln in text.split("\n")]
        self.text = "\n".join(self.lines)
        stamps = re.findall(rb"^\[\s*(\d+\.\d+)\]", stdout, re.M)
        self.kernel_clock_s = float(stamps[-1]) if stamps else None

    def lines_starting(self, prefix: str) -> list[str]:
        return [ln for ln in self.lines if ln.startswith(prefix)]

    def summary(self) -> str:
        first = "no console output" if self.first_output_s is None else \
            f"first console output after {self.first_output_s:.1f} s"
        clock = "" if self.kernel_clock_s is None else f", kernel clock {self.kernel_clock_s:.1f} s at its last line"
        return f"exit {self.returncode} after {self.seconds:.1f} s; {first}{clock}"

    def why(self) -> str:
        tail = "\n".join(self.lines[-40:])
        return (f"{self.summary()}; log {self.log}\nstderr: {self.stderr.strip()}\n"
                f"--- console tail ---\n{tail}")


def boot(request, tmp_path, name: str, image, *args: str, timeout_s: float, cmdline: str = CMDLINE) -> Boot:
    """`hvtui run IMAGE ARGS --append CMDLINE ...` as a user types it; COM1 is stdout."""
    cmd = [sys.executable, "-m", "hvtui", "run", str(image), *args, "--append", cmdline,
           "--memory", str(MEMORY_MIB), "--timeout", str(timeout_s), "--watchdog", "0",
           "--name", name, "--log-dir", str(tmp_path)]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.close()
    out, err, first = [], [], []

    def pump(f, into, stamp):
        while chunk := f.read1(1 << 16):
            if stamp and not first:
                first.append(time.monotonic() - t0)
            into.append(chunk)
    threads = [threading.Thread(target=pump, args=(p.stdout, out, True), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, err, False), daemon=True)]
    for t in threads:
        t.start()
    try:
        p.wait(timeout=timeout_s + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"hvtui run ignored --timeout {timeout_s}: killed after {time.monotonic() - t0:.0f} s")
    finally:
        for t in threads:
            t.join(10)
    b = Boot(p.returncode, b"".join(out), b"".join(err), time.monotonic() - t0,
             first[0] if first else None, tmp_path / f"{name}.log")
    request.node.user_properties.append(("boot_seconds", round(b.seconds, 1)))
    note(request.config, f"{name}: {b.summary()}")
    return b


def check_early_boot(b: Boot, e820: list[str], cmdline: str = CMDLINE) -> None:
    """What setup_arch() prints on either path: banner, e820 map, command line."""
    assert BANNER in b.text, b.why()
    assert b.lines_starting("BIOS-e820: ") == e820, b.why()
    assert b.lines_starting("Command line: ") == [f"Command line: {cmdline}{VIRTIO_ANNOUNCED}"], b.why()


def check_vga_console(b: Boot, vga_text: str) -> None:
    """vgacon took the VGA screen (not the dummy console) and shows Linux's own lines there:
    every row on it is part of what COM1 printed (long lines wrap at 80 columns)."""
    assert "Console: colour VGA+ 80x25" in b.lines, b.why()
    assert "printk: console [tty0] enabled" in b.lines, b.why()
    # vt_console_print() writes a tab as the byte 9 itself, which code page 437 draws as ○
    rows = [r.replace("\u25cb", "\t") for r in vga_text.split("\n") if r.strip()]
    com1 = b.stdout.decode(errors="replace").replace("\r", "")
    why = f"{b.summary()}\n--- VGA screen ---\n{vga_text}"
    assert len(rows) >= 20, why                   # the screen has scrolled: 25 rows of the log
    missing = [r for r in rows if r.rstrip() not in com1]
    assert not missing, f"VGA rows that COM1 never printed: {missing}\n{why}"


# ---------------------------------------------------------------- the boots (minutes each)

@pytest.mark.linux
@pytest.mark.kvm
@pytest.mark.timeout(BZIMAGE_TIMEOUT_S + 120)
def test_bzimage_boots_to_its_banner(kernel, tmp_path, request):
    """The stock bzImage. On KVM-PVM its LZ4 decompressor runs emulated (the first line
    comes after ~75 s), then the unpatched kernel dies at the int3 of int3_selftest() in an
    emulation failure (~76 s). With VT-x/AMD-V it boots on, finds no root file system and
    panics; panic=-1 resets the machine. Either way the run ends by itself.
    With console=tty0 too, vgacon (from the zero page's screen_info) writes the same lines
    on the VGA text screen: what --screen-to saves at the end is the tail of COM1's."""
    screen = tmp_path / "screen"
    b = boot(request, tmp_path, "linux-bzimage", kernel.vmlinuz, "--screen-to", str(screen),
             timeout_s=BZIMAGE_TIMEOUT_S, cmdline=CMDLINE_BZIMAGE)
    assert b.returncode != 124, "the guest hung: " + b.why()
    check_early_boot(b, E820_BZIMAGE, CMDLINE_BZIMAGE)
    check_vga_console(b, (tmp_path / "screen.txt").read_text(encoding="utf-8"))
    if b.returncode == 3:
        lines = b.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hvtui: linux-bzimage crashed: emulation failure"), b.why()
    else:
        assert b.returncode == 0, b.why()


@pytest.mark.linux
@pytest.mark.kvm
@pytest.mark.timeout(PVH_TIMEOUT_S + 120)
def test_pvh_boots_to_init(kernel, tmp_path, request):
    """The patched vmlinux through its PVH entry, with an initramfs whose /init is `ud2`:
    the kernel finds the ACPI tables, the RTC, the 16550A and the i8042 with its keyboard
    (atkbd, translated set 2), unpacks the initramfs, runs
    /init (user mode cannot make system calls on KVM-PVM: ud2 is as far as it can get),
    panics on init's death and, with panic=-1 reboot=a, resets the machine: exit 0."""
    b = boot(request, tmp_path, "linux-pvh", kernel.vmlinux_patched, "--initrd", str(kernel.initramfs_ud2),
             "-v", timeout_s=PVH_TIMEOUT_S)
    assert b.returncode != 124, "the guest hung: " + b.why()
    check_early_boot(b, E820_PVH)
    assert b.lines_starting("ACPI: RSDP 0x00000000000E0000 "), b.why()
    for table in ("FACP", "APIC", "DSDT"):
        assert re.search(rf"^ACPI: {table} 0x[0-9A-F]{{16}} ", b.text, re.M), f"no ACPI {table}: " + b.why()
    assert re.search(r"^rtc_cmos \S+: registered as rtc0$", b.text, re.M), b.why()
    assert "ttyS0 at I/O 0x3f8 (irq = 4, base_baud = 115200) is a 16550A" in b.text, b.why()
    assert "serio: i8042 KBD port at 0x60,0x64 irq 1" in b.text, b.why()      # its probe passed
    assert re.search(r"^input: AT Translated Set 2 keyboard as ", b.text, re.M), b.why()
    # CONFIG_BLK_DEV_RAM=m: 6.1 says "Trying to unpack rootfs image as initramfs..."
    assert re.search(r"^(Unpacking initramfs|Trying to unpack rootfs image as initramfs)\.\.\.$",
                     b.text, re.M), b.why()
    assert "rootfs image is not initramfs" not in b.text and "Initramfs unpacking failed" not in b.text, b.why()
    assert re.search(r"^Freeing initrd memory: \d+K$", b.text, re.M), b.why()
    assert "Kernel panic - not syncing: Attempted to kill init!" in b.text, b.why()
    assert b.returncode == 0, b.why()
    assert "linux-pvh: reset" in b.stderr, b.why()      # panic=-1 reboot=a: ACPI reset register


@pytest.mark.linux
def test_fixture_vmlinux_is_a_pvh_elf(kernel):
    """The fixture's vmlinux-patched is the ELF the PVH loader expects: x86-64, with the
    Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, type 18) and the five patches applied."""
    from elftools.elf.elffile import ELFFile
    with open(kernel.vmlinux_patched, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_X86_64"
        notes = [n for seg in elf.iter_segments() if seg["p_type"] == "PT_NOTE" for n in seg.iter_notes()]
    pvh = [n for n in notes if n["n_name"] == "Xen" and n["n_type"] == 18]
    assert len(pvh) == 1
    original, patched = kernel.vmlinux.read_bytes(), kernel.vmlinux_patched.read_bytes()
    assert len(original) == len(patched)
    step = 1 << 16
    changed = sum(a != b for i in range(0, len(original), step)
                  if original[i:i + step] != patched[i:i + step]
                  for a, b in zip(original[i:i + step], patched[i:i + step]))
    assert changed == 12


# ---------------------------------------------------------------- the initramfs builder (fast)

def test_ud2_initramfs_is_a_newc_archive_of_dev_proc_console_and_init():
    data = linux_kernel.ud2_initramfs()
    assert data == linux_kernel.ud2_initramfs()               # reproducible: gzip mtime 0
    assert data[:2] == b"\x1f\x8b" and struct.unpack_from("<I", data, 4)[0] == 0
    raw = gzip.decompress(data)
    entries = linux_kernel.parse_cpio_newc(raw)
    assert len(raw) % 512 == 0
    by_name = {e["name"]: e for e in entries}
    assert sorted(by_name) == ["dev", "dev/console", "init", "proc"]
    assert len({e["ino"] for e in entries}) == len(entries)
    for e in entries:
        assert e["uid"] == e["gid"] == e["mtime"] == 0
    for d in ("dev", "proc"):
        assert by_name[d]["mode"] == stat.S_IFDIR | 0o755 and by_name[d]["filesize"] == 0
    console = by_name["dev/console"]
    assert stat.S_ISCHR(console["mode"]) and (console["rdevmajor"], console["rdevminor"]) == (5, 1)
    init = by_name["init"]
    assert init["mode"] == stat.S_IFREG | 0o755
    assert init["data"] == linux_kernel.ud2_elf()


def test_ud2_elf_header_and_entry():
    elf = linux_kernel.ud2_elf()
    (magic, cls, endian, version, _osabi, _abiver, e_type, e_machine, e_version, e_entry, e_phoff,
     e_shoff, _flags, e_ehsize, e_phentsize, e_phnum, _shentsize, e_shnum, _shstrndx) = \
        struct.unpack_from("<4sBBBBB7xHHIQQQIHHHHHH", elf)
    assert (magic, cls, endian, version) == (b"\x7fELF", 2, 1, 1)
    assert (e_type, e_machine, e_version) == (2, 62, 1)        # ET_EXEC, EM_X86_64
    assert (e_phoff, e_ehsize, e_phentsize, e_phnum, e_shoff, e_shnum) == (64, 64, 56, 1, 0, 0)
    p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, p_align = \
        struct.unpack_from("<IIQQQQQQ", elf, e_phoff)
    assert (p_type, p_flags, p_offset, p_filesz, p_memsz) == (1, 5, 0, len(elf), len(elf))
    assert p_vaddr % p_align == 0
    assert p_vaddr <= e_entry < p_vaddr + p_filesz
    assert elf[e_entry - p_vaddr:][:2] == b"\x0f\x0b"          # ud2


@pytest.mark.skipif(platform.system() != "Linux" or platform.machine() != "x86_64",
                    reason="runs the ELF on the host: needs Linux on x86-64")
def test_ud2_elf_runs_and_dies_of_sigill(tmp_path):
    """The host's own ELF loader accepts /init, and its first instruction is an invalid one."""
    init = tmp_path / "init"
    init.write_bytes(linux_kernel.ud2_elf())
    init.chmod(0o755)
    r = subprocess.run([str(init)], capture_output=True)
    assert r.returncode == -signal.SIGILL


def test_patches_need_exactly_one_match():
    pat = bytes.fromhex(linux_kernel.PATCHES[1][1])
    for data, found in ((b"\0" * 64, 0), (pat + b"\0" + pat, 2)):
        with pytest.raises(linux_kernel.KernelFixtureError, match=rf'fpu__drop fwait->nop.*found {found} times'):
            linux_kernel.apply_patches(data, [linux_kernel.PATCHES[1]])
    out = linux_kernel.apply_patches(b"ab" + pat + b"cd", [linux_kernel.PATCHES[1]])
    assert out == b"ab" + pat[:2] + b"\x90" + pat[3:] + b"cd"


def test_cache_entry_is_stale_when_an_input_changes(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.write_bytes(b"input")
    linux_kernel._produce(out, b"output", (src,))
    assert linux_kernel.is_fresh(out, (src,))
    assert (tmp_path / "out.sha256").read_text().splitlines()[1].endswith("  src")
    src.write_bytes(b"changed")
    assert not linux_kernel.is_fresh(out, (src,))
    linux_kernel._produce(out, b"output", (src,))
    out.write_bytes(b"corrupted")
    assert not linux_kernel.is_fresh(out, (src,))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HVTUI_LINUX_CACHE", str(tmp_path / "k"))
    assert linux_kernel.cache_dir() == tmp_path / "k"
    monkeypatch.delenv("HVTUI_LINUX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert linux_kernel.cache_dir() == tmp_path / "xdg" / "hvtui" / "linux-kernel"
    assert os.environ.get("HVTUI_LINUX_CACHE") is None
