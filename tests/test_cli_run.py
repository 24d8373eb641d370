"""`hvtui run` and `hvtui images` as a user runs them: real guests on /dev/kvm."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kvm


def hvtui(*args, stdin=b"", timeout=60, tmp_path=None):
    """Run hvtui; stdin given: piped in (its end stops the guest once read, --stdin-eof);
    none: /dev/null."""
    cmd = [sys.executable, "-m", "hvtui", *args]
    if tmp_path is not None and args and args[0] == "run":
        cmd += ["--log-dir", str(tmp_path)]
    if not stdin:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)


def test_hello_prints_banner_and_exits_0(tmp_path):
    r = hvtui("run", "hello", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Hello from hvtui! vcpu 0/1, 64 MiB RAM\r\n"
    assert r.stderr == b""
    assert (tmp_path / "hello-1.log").read_bytes().startswith(b"Hello from hvtui!")


def test_hello_sees_its_memory_and_vcpus(tmp_path):
    r = hvtui("run", "hello", "--memory", "128", "--vcpus", "2", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert b"vcpu 0/2, 128 MiB RAM" in r.stdout


@pytest.mark.parametrize("kind, reason, insn", [
    ("triple", "triple fault", None),
    ("ud", "triple fault", "0f 0b"),
    ("hang", "runaway loop", None),
])
def test_crash_kinds(tmp_path, kind, reason, insn):
    r = hvtui("run", "crash", "--cmdline", kind, "--watchdog", "1.5", tmp_path=tmp_path)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert f"crash: {kind}".encode() in r.stdout
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and reason in lines[0], lines
    log = (tmp_path / "crash-1.log").read_text(errors="replace")
    assert "rip=" in log and "rflags=" in log          # the register dump is kept
    if insn:
        assert f"instruction bytes: {insn}" in log


def test_mmio_nobody_owns_reads_all_ones_and_is_ignored(tmp_path):
    """As on a PC: a write to MMIO no device owns vanishes and a read floats high; the
    guest goes on (its own exit status 1 says it came back)."""
    r = hvtui("run", "crash", "--cmdline", "mmio", tmp_path=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert b"the monitor ignored it; it reads 0xffffffff\r\n" in r.stdout


def test_exit_status_from_debug_exit_and_stdin(tmp_path):
    r = hvtui("run", "shell", stdin=b"echo hello shell\nexit 300\n", tmp_path=tmp_path)
    assert b"hello shell\r\n" in r.stdout
    assert r.returncode == 300 & 0xFF


def test_timeout_stops_the_guest_with_124(tmp_path):
    r = hvtui("run", "counter", "--timeout", "0.6", tmp_path=tmp_path)
    assert r.returncode == 124
    assert b"count 2\r\n" in r.stdout
    assert b"timed out" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("nope",), b"unknown image 'nope'"),
    (("hello", "--memory", "0"), b"memory must be at least"),
    (("hello", "--memory", "100000"), b"more than the host has free"),
    (("hello", "--memory", "100000000"), b"memory above 108 GiB is not supported"),
    (("hello", "--vcpus", "0"), b"vCPUs must be between 1 and"),
    (("hello", "--vcpus", "100000"), b"vCPUs must be between 1 and"),
    (("/etc/hostname",), b"not a kernel hvtui can boot (tried Multiboot 2, Multiboot 1, Linux bzImage, PVH, hvtui ELF64)"),
    (("/nonexistent/guest.elf",), b"no such file"),
])
def test_bad_input_is_one_line_no_traceback(tmp_path, args, message):
    r = hvtui("run", *args, tmp_path=tmp_path)
    assert r.returncode == 1
    assert r.stdout == b""
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and b"Traceback" not in r.stderr


def test_no_kvm_says_join_the_group(tmp_path):
    """A /dev/kvm this user may not open: one line saying to join the kvm group. Root
    opens a mode-0 file anyway, so as root the file is made immutable (EPERM for root too)."""
    import os
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    kvm.chmod(0)
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(kvm)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("as root, a /dev/kvm that cannot be opened needs chattr +i, which this filesystem refuses")
    try:
        env = dict(os.environ, HVTUI_KVM_PATH=str(kvm))
        r = subprocess.run([sys.executable, "-m", "hvtui", "run", "hello"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL)
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(kvm)], capture_output=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert b"no permission to open" in r.stderr and b"join the kvm group" in r.stderr, r.stderr
    env["HVTUI_KVM_PATH"] = str(tmp_path / "missing")
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", "hello"], env=env, capture_output=True,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert b"does not exist: KVM is not available" in r.stderr


def test_images_lists_every_builtin():
    r = hvtui("images")
    assert r.returncode == 0
    names = [line.split()[0] for line in r.stdout.decode().splitlines()]
    assert names == ["hello", "counter", "shell", "crash", "memhog", "exitbench", "blkbench", "busy", "vconsole",
                     "mb1", "mb1-aout", "mb2", "pvh", "bzimage", "smp", "gdbtest", "vgademo"]


def test_memhog_touches_all_its_ram(tmp_path):
    r = hvtui("run", "memhog", "--memory", "96", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout[-300:]
    assert b", ok" in r.stdout
