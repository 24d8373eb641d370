"""Inputs that were trusted (issue 12), as a user meets them on the command line: kernel
and module files that lie about their size or are not files, log directories that cannot
be used, fleet files that are not what they claim, numbers that are not numbers, more
vCPUs than memory for their stacks, a snapshot's disk, RAM the host cannot promise.
Each is one line on stderr and exit status 1 (2 for a usage error), with nothing built."""
from __future__ import annotations

import asyncio
import os
import re
import struct
import subprocess
import sys

import psutil
import pytest

from peak_rss import run_with_peak
from hvtui.errors import ConfigError
from hvtui.host import GuestSpec, Host

pytestmark = pytest.mark.kvm
MiB = 1 << 20


def hvtui(*args, stdin=subprocess.DEVNULL, input=None, timeout=60, env=None):
    if input is not None:
        return subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=timeout,
                              input=input, env=env)
    return subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=timeout,
                          stdin=stdin, env=env)


def one_line(r, code=1) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err, r.stdout[-200:])
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def elf64(paddr=0x100000, filesz=None, memsz=None, offset=0x1000, body=b"\xf4" * 16, entry=None) -> bytes:
    """An x86-64 ELF executable with one PT_LOAD whose fields can lie."""
    filesz = len(body) if filesz is None else filesz
    memsz = max(filesz, len(body)) if memsz is None else memsz
    entry = paddr if entry is None else entry
    ehdr = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
            + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, 64, 0, 0, 64, 56, 1, 64, 0, 0))
    phdr = struct.pack("<IIQQQQQQ", 1, 7, offset, paddr, paddr, filesz, memsz, 0x1000)
    head = ehdr + phdr
    return head + bytes(0x1000 - len(head)) + body


def _peak(args) -> tuple[int, str, float]:
    code, err, peak = run_with_peak([sys.executable, "-m", "hvtui", *args])
    return code, err.decode(), peak


# ---- kernel and module files ----
@pytest.mark.parametrize("case, build, message", [
    ("truncated", lambda: elf64(body=b"\xf4" * 4096)[:0x1800], "beyond the end of the file"),
    ("filesz 2^40", lambda: elf64(filesz=1 << 40), "beyond the end of the file"),
    ("memsz 2^40", lambda: elf64(memsz=1 << 40), "outside the guest's usable RAM"),
    ("offset 2^63", lambda: elf64(offset=1 << 63), "beyond the end of the file"),
    ("segment at 2^40", lambda: elf64(paddr=1 << 40), "outside the guest's usable RAM"),
])
def test_an_elf_that_lies_is_refused_with_one_line(tmp_path, case, build, message):
    path = tmp_path / "k.elf"
    path.write_bytes(build())
    code, err, peak = _peak(["run", str(path), "--log-dir", str(tmp_path / "logs")])
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err, err
    assert peak < 200, f"peak RSS {peak:.0f} MiB"
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").iterdir())


def test_a_sparse_4_gib_kernel_is_refused_unread(tmp_path):
    path = tmp_path / "sparse.elf"
    with open(path, "wb") as f:
        f.write(elf64())
        f.truncate(4 << 30)
    for args in (["run", str(path)], ["run", "hello", "--initrd", str(path)]):
        code, err, peak = _peak([*args, "--log-dir", str(tmp_path / "logs")])
        assert code == 1 and "4096 MiB is larger than the 1024 MiB" in err, err
        assert peak < 200, f"peak RSS {peak:.0f} MiB"


def test_modules_larger_than_ram_are_refused_unread(tmp_path):
    big = tmp_path / "big.img"
    with open(big, "wb") as f:
        f.truncate(900 * MiB)                           # under the file cap, over the guest's RAM
    code, err, peak = _peak(["run", "mb1", "--memory", "64", "--initrd", str(big), "--log-dir", str(tmp_path)])
    assert code == 1 and "does not fit in guest RAM (64 MiB)" in err, err
    assert peak < 200, f"peak RSS {peak:.0f} MiB"


@pytest.mark.parametrize("image", ["mb1", "pvh"])
def test_a_large_initrd_goes_from_its_file_into_guest_ram(tmp_path, image):
    """A 256 MiB initrd costs the monitor the guest RAM it fills and no copy besides
    (Linux-style protocols used to concatenate the files in memory first: three times its
    size). The test kernel then hashes it at CPL 0 for longer than the run's 2 s."""
    big = tmp_path / "initrd.img"
    with open(big, "wb") as f:
        f.truncate(256 * MiB)
    code, err, peak = _peak(["run", image, "--memory", "512", "--initrd", str(big), "--timeout", "2",
                             "--log-dir", str(tmp_path)])
    assert code == 124, err
    assert peak < 256 + 100, f"peak RSS {peak:.0f} MiB for a 256 MiB initrd"


@pytest.mark.parametrize("what", ["directory", "character device", "FIFO"])
def test_a_kernel_or_module_that_is_not_a_file_says_what_it_is(tmp_path, what):
    target = {"directory": str(tmp_path), "character device": "/dev/zero", "FIFO": str(tmp_path / "fifo")}[what]
    if what == "FIFO":
        os.mkfifo(target)                               # opening it for reading would wait forever
    for args, kind in ((["run", target], "kernel"), (["run", "mb1", "--initrd", target], "module or initrd")):
        err = one_line(hvtui(*args, "--log-dir", str(tmp_path / "logs"), timeout=30))
        assert f"{target}: is a {what}, not a {kind} file" in err, err


def test_more_vcpus_than_stacks_fit_names_the_memory_needed(tmp_path):
    err = one_line(hvtui("run", "hello", "--vcpus", "200", "--memory", "8", "--log-dir", str(tmp_path)))
    assert re.search(r"200 vCPU\(s\) need 12800 KiB of stacks .* give the guest at least 14 MiB", err), err
    assert "-0x" not in err
    err = one_line(hvtui("run", "hello", "--vcpus", "256", "--log-dir", str(tmp_path)))
    assert "vCPUs must be between 1 and 255" in err


# ---- the command line and fleet files ----
@pytest.mark.parametrize("args, message", [
    (("--timeout", "nan"), "--timeout: must be a finite number of seconds above 0"),
    (("--timeout", "-1"), "--timeout: must be a finite number of seconds above 0"),
    (("--timeout", "0"), "--timeout: must be a finite number of seconds above 0"),
    (("--watchdog", "-2"), "--watchdog: must be a finite number of seconds from 0"),
    (("--watchdog", "inf"), "--watchdog: must be a finite number of seconds from 0"),
    (("--snapshot-after", "nan", "--snapshot-to", "x"), "--snapshot-after: must be a finite number"),
    (("--memory", "-64"), "--memory: must not be negative"),
    (("--log-max", "0"), "--log-max: must be at least 1 MiB"),
])
def test_numbers_that_are_not_are_one_usage_line(args, message):
    err = one_line(hvtui("run", "hello", *args), code=2)
    assert message in err, err


def test_version():
    r = hvtui("--version")
    assert r.returncode == 0 and re.fullmatch(rb"hvtui \d+\.\d+\.\d+\n", r.stdout), r.stdout


@pytest.mark.parametrize("content, message", [
    (b'[[guest]]\nimage = "counter"\nname = "caf\xe9"\n', "not UTF-8 text (byte 0xe9"),
    (b"guest = [1, 2]\n", "guest 1: expected a [[guest]] table"),
    (b'[[guest]]\nimage = "counter"\nwatchdog = nan\n', "watchdog must be a finite number"),
    (b'[[guest]]\nimage = "counter"\nwatchdog = -1\n', "watchdog must be a finite number"),
    (b'[[guest]]\nimage = "counter"\nmemory = -5\n', "memory must be at least 1"),
    (b'[[guest]]\nimage = "counter"\novercommit = "yes"\n', "overcommit: expected bool"),
])
def test_a_bad_fleet_file_is_one_line(tmp_path, content, message):
    fleet = tmp_path / "fleet.toml"
    fleet.write_bytes(content)
    err = one_line(hvtui("--fleet", str(fleet)))
    assert message in err, err


# ---- log directories ----
def test_log_dir_on_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    err = one_line(hvtui("run", "hello", "--log-dir", str(blocker)))
    assert f"log directory {blocker}: a file is in the way" in err
    err = one_line(hvtui("run", "hello", "--log-dir", str(blocker / "sub")))
    assert f"log directory {blocker / 'sub'}:" in err


def test_log_dir_that_is_not_writable_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a read-only tmpfs: {r.stderr.decode().strip()}")
    try:
        err = one_line(hvtui("run", "hello", "--log-dir", str(ro)))
        assert f"log directory {ro}: not writable" in err or "Read-only file system" in err, err
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _vm_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += "kvm-vm" in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return n


async def test_a_guest_whose_log_cannot_open_is_not_leaked(tmp_path):
    """Five tries with a log file that cannot be opened: five one-line errors, and no VM,
    file descriptor or promised RAM left behind (it used to leak a whole VM each time)."""
    from hvtui.vmm import admission
    logs = tmp_path / "logs"
    async with Host(log_dir=logs) as host:
        await host.create(GuestSpec("hello", name="warm", memory_mib=8))   # the warm VM pool filled
        await host.wait_until_ended("warm", timeout=20)
        import shutil
        shutil.rmtree(logs)
        logs.write_text("")                            # a file in the way: no log can open
        vms, fds = _vm_fds(), _fds()
        for _ in range(5):
            with pytest.raises(ConfigError, match="g: cannot open its console log"):
                await host.create(GuestSpec("hello", name="g", memory_mib=8))
        assert "g" not in host.guests
        await asyncio.sleep(0.2)
        assert _vm_fds() <= vms and _fds() <= fds + 2, (_vm_fds(), vms, _fds(), fds)
        assert [p.name for p in admission.promised()] == ["warm"]


# ---- a snapshot's disk ----
def test_a_snapshots_disk_is_shown_and_reopened_only_when_named(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    snap = tmp_path / "d.snap"
    r = hvtui("run", "counter", "--disk", str(disk), "--snapshot-after", "0.3", "--snapshot-to", str(snap),
              "--timeout", "1", "--log-dir", str(tmp_path / "logs"))
    assert r.returncode == 124, r.stderr
    info = hvtui("snapshot", "info", str(snap))
    assert info.returncode == 0 and f"disk      {disk} (read-write;".encode() in info.stdout, info.stdout
    err = one_line(hvtui("run", str(snap), "--log-dir", str(tmp_path / "logs")))
    assert f"had the disk {disk}, which restore would open read-write: pass --disk {disk}" in err, err
    assert not (tmp_path / "logs" / "counter-1.log").read_bytes().count(b"restored from")
    other = tmp_path / "other.img"
    other.write_bytes(bytes(1 << 20))
    r = hvtui("run", str(snap), "--disk", str(other), "--timeout", "0.5", "--log-dir", str(tmp_path / "logs"))
    assert r.returncode == 124 and b"count " in r.stdout, r.stderr
    small = tmp_path / "small.img"
    small.write_bytes(bytes(4096))
    err = one_line(hvtui("run", str(snap), "--disk", str(small), "--log-dir", str(tmp_path / "logs")))
    assert "has 8 sectors; the snapshot's disk had 2048" in err, err


async def test_a_guest_with_a_disk_can_be_snapshotted_and_restored(host, tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    await host.create(GuestSpec("counter", name="d", memory_mib=16, disk=str(disk)))
    await host.wait_for_output("d", b"count 2\r\n")
    info = await host.snapshot("d", tmp_path / "d.snap")
    assert info["file_size"] > 0
    r = await host.restore(tmp_path / "d.snap", name="d2", disk=str(disk))
    await host.wait_for_output("d2", b"count ", timeout=20)
    assert r.machine.board.ata is not None and r.machine.config.disk == str(disk)


# ---- admission ----
async def test_ram_promised_to_other_guests_is_counted(host):
    """Two guests each asking 60% of what the host has available: lazily mapped RAM fits
    once, not twice; with overcommit the user takes the risk knowingly."""
    big = int(psutil.virtual_memory().available * 0.6) >> 20
    await host.create(GuestSpec("counter", name="first", memory_mib=big), start=False)
    with pytest.raises(ConfigError) as err:
        await host.create(GuestSpec("counter", name="second", memory_mib=big), start=False)
    message = str(err.value)
    assert f"{big} MiB of guest memory is more than the host has free" in message
    assert "already promised to 1 other guest(s)" in message and "--overcommit" in message
    assert "second" not in host.guests
    await host.create(GuestSpec("counter", name="second", memory_mib=big, overcommit=True), start=False)
    for name in ("first", "second"):
        await host.kill(name)
        await host.remove(name)
    await host.create(GuestSpec("counter", name="third", memory_mib=big), start=False)   # promises released


def _memory_cgroup() -> tuple[str, str, str] | None:
    """(directory to make a child cgroup in, limit file, procs file) of this process's
    memory cgroup (v2 or v1), or None."""
    for line in open("/proc/self/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base = "/sys/fs/cgroup" + path
            if "memory" in open(os.path.join(base, "cgroup.controllers")).read().split():
                return base, "memory.max", "cgroup.procs"
        if "memory" in controllers.split(","):
            return "/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes", "cgroup.procs"
    return None


def test_a_memory_cgroup_limit_is_honoured(tmp_path):
    """Under a 256 MiB cgroup limit a 512 MiB guest is refused (one line naming the
    cgroup) instead of getting the monitor OOM-killed; a 64 MiB one runs."""
    found = _memory_cgroup()
    if found is None:
        pytest.skip("no memory cgroup to nest a limited one in")
    base, limit_file, procs = found
    child = os.path.join(base, f"hvtui-test-{os.getpid()}")
    try:
        os.mkdir(child)
        with open(os.path.join(child, limit_file), "w") as f:
            f.write(str(256 * MiB))
    except OSError as e:
        pytest.skip(f"cannot make a limited memory cgroup under {base}: {e.strerror}")
    try:
        def run(memory):
            return subprocess.run(["sh", "-c", f'echo $$ > {os.path.join(child, procs)} && exec "$@"', "sh",
                                   sys.executable, "-m", "hvtui", "run", "hello", "--memory", str(memory),
                                   "--log-dir", str(tmp_path)], capture_output=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        err = one_line(run(512))
        assert "512 MiB of guest memory is more than the memory cgroup allows (256 MiB limit in" in err, err
        ok = run(64)
        assert ok.returncode == 0 and b"Hello from hvtui" in ok.stdout, ok.stderr
    finally:
        for _ in range(50):
            try:
                os.rmdir(child)
                break
            except OSError:
                import time
                time.sleep(0.1)


# ---- end of piped input ----
def test_end_of_piped_input_stops_the_guest(tmp_path):
    r = hvtui("run", "shell", "--log-dir", str(tmp_path), input=b"help\n", timeout=30)
    assert r.returncode == 0 and b"commands:" in r.stdout, r.stderr
    assert r.stderr.decode().strip() == "hvtui: shell-1: end of input; guest stopped (--stdin-eof keep lets it run on)"


def test_end_of_piped_input_lets_the_guest_finish_first(tmp_path):
    r = hvtui("run", "shell", "--log-dir", str(tmp_path), input=b"echo hi\nexit 7\n", timeout=30)
    assert r.returncode == 7 and b"hi\r\n" in r.stdout and r.stderr == b""


def test_a_guest_that_never_reads_does_not_hang_a_pipe(tmp_path):
    r = hvtui("run", "counter", "--log-dir", str(tmp_path), input=b"x" * 10000, timeout=30)
    assert r.returncode == 0 and b"end of input" in r.stderr and b"count 3" in r.stdout


def test_stdin_eof_keep_lets_it_run_on(tmp_path):
    r = hvtui("run", "shell", "--stdin-eof", "keep", "--timeout", "4", "--log-dir", str(tmp_path),
              input=b"echo kept\n", timeout=30)
    assert r.returncode == 124 and b"kept\r\n" in r.stdout and b"timed out" in r.stderr


def test_stdin_from_a_file_reaches_the_guest(tmp_path):
    script = tmp_path / "in.txt"
    script.write_bytes(b"echo from a file\nexit 4\n")
    with open(script, "rb") as f:
        r = hvtui("run", "shell", "--log-dir", str(tmp_path), stdin=f, timeout=30)
    assert r.returncode == 4 and b"from a file\r\n" in r.stdout


def test_an_empty_pipe_ends_nothing(tmp_path):
    """A harness that closes stdin at once gave no input: the guest runs on (as with /dev/null)."""
    r = hvtui("run", "counter", "--timeout", "3", "--log-dir", str(tmp_path), input=b"", timeout=30)
    assert r.returncode == 124 and b"timed out" in r.stderr and b"end of input" not in r.stderr
