"""Snapshot, restore and clone on real KVM (DESIGN §6, issue 4): guests continue exactly
where they were saved, clones are independent, bad files are refused untouched, and a
save killed half-way leaves the previous file intact."""
import asyncio
import glob
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from hvtui.errors import SnapshotError
from hvtui.api import Boot, GuestSpec
from hvtui.vmm import snapshot
from hvtui.vmm.kvm import Kvm
from hvtui.vmm.machine import State

pytestmark = pytest.mark.kvm


def counts(data: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"^count (\d+)\r$", bytes(data), re.M)]


def digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


async def wait_count(host, name: str, n: int, timeout: float = 20.0) -> None:
    await host.wait_for_output(name, f"count {n}\r\n".encode(), timeout=timeout)


# ---- continuity ----
async def test_cycles_keep_counting_without_gap_or_repeat(host, tmp_path):
    """counter -> snapshot -> restore -> snapshot -> restore ...: the console stream of each
    machine up to its snapshot, followed by its restored successor's, counts 0, 1, 2, ...
    with nothing missing and nothing twice."""
    g = await host.create(GuestSpec("counter", name="gen0"))
    await wait_count(host, "gen0", 2)
    stream = b""
    current, start_offset = g, 0
    for cycle in range(1, 4):
        path = tmp_path / f"cycle{cycle}.snap"
        info = await host.snapshot(current.name, path)
        assert current.state == State.RUNNING         # a live snapshot: the guest went on
        host._drain(current)
        # the console bytes it had sent when it was saved (a restored one counts on)
        stream += bytes(current.history[:info["console_offset"] - start_offset])
        before = counts(stream)[-1]
        await host.kill(current.name)
        await host.remove(current.name)
        current = await host.restore(path, name=f"gen{cycle}")
        start_offset = info["console_offset"]
        await wait_count(host, current.name, before + 3)
    host._drain(current)
    stream += bytes(current.history)
    seen = counts(stream)
    assert seen == list(range(len(seen))), seen
    assert len(seen) >= 12
    expect = b"counter: 1 vcpu(s)\r\n" + b"".join(b"count %d\r\n" % i for i in range(len(seen) + 1))
    assert stream == expect[:len(stream)]           # byte for byte: no character lost or doubled


async def test_live_snapshot_original_goes_on_and_restore_continues(host, tmp_path):
    g = await host.create(GuestSpec("counter", name="orig"))
    await wait_count(host, "orig", 2)
    path = tmp_path / "live.snap"
    info = await host.snapshot("orig", path)
    assert g.state == State.RUNNING
    host._drain(g)
    last_saved = counts(g.history[:info["console_offset"]])[-1]
    clone = await host.restore(path)               # its name is taken: a free variant of it
    assert clone.name == "orig-1"
    await wait_count(host, "orig-1", last_saved + 2)
    first = counts(clone.history)[0]
    assert first == last_saved + 1               # no gap, no repeat
    # the original was not disturbed: its own count never restarted or skipped
    await wait_count(host, "orig", last_saved + 4)
    seen = counts(g.history)
    assert seen == list(range(len(seen)))


async def test_paused_guest_stays_paused_and_restores(host, tmp_path):
    g = await host.create(GuestSpec("counter", name="p"))
    await wait_count(host, "p", 2)
    await host.pause("p")
    host._drain(g)
    frozen = len(g.history)
    last = counts(g.history)[-1]
    path = tmp_path / "paused.snap"
    await host.snapshot("p", path)
    assert g.state == State.PAUSED
    await asyncio.sleep(0.3)
    host._drain(g)
    assert len(g.history) == frozen, "a paused guest ran during its snapshot"
    r = await host.restore(path, name="p2")
    assert r.state == State.RUNNING
    await wait_count(host, "p2", last + 2)
    assert counts(r.history)[0] == last + 1
    await host.resume("p")                        # the original continues on its own too
    await wait_count(host, "p", last + 2)


async def test_restore_after_the_original_was_killed(host, tmp_path):
    await host.create(GuestSpec("counter", name="doomed", memory_mib=32))
    await wait_count(host, "doomed", 1)
    path = tmp_path / "k.snap"
    info = await host.snapshot("doomed", path)
    await host.kill("doomed")
    await host.remove("doomed")
    r = await host.restore(path)
    assert r.name == "doomed" and r.machine.config.memory_mib == 32     # the snapshot's name and config
    await wait_count(host, "doomed", 5)
    assert counts(r.history) == list(range(counts(r.history)[0], counts(r.history)[-1] + 1))
    assert r.machine.console_offset() > info["console_offset"]
    host._drain(r)
    log = r.log_path.read_bytes()            # one log per run: the restored guest's is a new file ...
    assert r.log_path.name == "doomed.2.log" and (tmp_path / "logs" / "doomed.log").resolve() == r.log_path
    assert log.startswith(b"[hvtui] restored from") and b"count 5" in log and b"count 0\r\n" not in log
    first = (tmp_path / "logs" / "doomed.1.log").read_bytes()     # ... and the original's is kept
    assert b"count 0\r\n" in first and b"killed" in first


async def test_two_vcpus_both_continue(host, tmp_path):
    g = await host.create(GuestSpec("counter", name="smp", vcpus=2))
    await host.wait_for_output("smp", b"cpu1 count 2\r\n", timeout=20)
    await host.pause("smp")
    path = tmp_path / "smp.snap"
    await host.snapshot("smp", path)
    host._drain(g)
    cpu0, cpu1 = counts(g.history)[-1], [int(n) for n in re.findall(rb"cpu1 count (\d+)\r", bytes(g.history))][-1]
    await host.kill("smp")
    r = await host.restore(path, name="smp2")
    await host.wait_for_output("smp2", f"cpu1 count {cpu1 + 2}\r\n".encode(), timeout=20)
    # "\ncount N": vCPU 0's line, not the end of "cpu1 count N" (which made this test flaky)
    await host.wait_for_output("smp2", f"\ncount {cpu0 + 2}\r\n".encode(), timeout=20)
    assert counts(r.history)[0] == cpu0 + 1
    assert int(re.search(rb"cpu1 count (\d+)\r", bytes(r.history)).group(1)) == cpu1 + 1


async def test_snapshot_needs_a_live_guest(host, tmp_path):
    from hvtui.errors import StateError
    await host.create(GuestSpec("hello", name="done"))
    await host.wait_until_ended("done", timeout=10)
    with pytest.raises(StateError):
        await host.snapshot("done", tmp_path / "x.snap")
    assert not (tmp_path / "x.snap").exists()
    with pytest.raises(SnapshotError, match="does not exist"):
        await host.create(GuestSpec("counter", name="c", memory_mib=8), start=False)
        await host.snapshot("c", tmp_path / "no" / "such" / "dir.snap")


async def test_four_clones_side_by_side(host, tmp_path):
    await host.create(GuestSpec("shell", name="sh"))
    await host.wait_for_output("sh", b"hvtui> ")
    host.send_input("sh", b"echo before\r")
    await host.wait_for_output("sh", b"before\r\nhvtui> ")
    path = tmp_path / "shell.snap"
    await host.snapshot("sh", path)
    await host.kill("sh")
    await host.remove("sh")
    file_digest = digest(path)
    names = [f"clone{i}" for i in range(4)]
    clones = await host.clone(path, names)
    assert [c.name for c in clones] == names
    for i, c in enumerate(clones):
        host.send_input(c.name, f"echo I am clone {i}\r".encode())
    for i, c in enumerate(clones):
        await host.wait_for_output(c.name, f"I am clone {i}\r\nhvtui> ".encode(), timeout=30)
    for i, c in enumerate(clones):           # consoles are independent: nobody heard the others
        for j in range(4):
            assert (f"I am clone {j}".encode() in c.history) == (i == j)
    # memory: each clone's RAM is its own copy-on-write map of the file
    spot = clones[0].machine.memory.regions[0].size - (1 << 20)       # free RAM below the stacks
    for i, c in enumerate(clones):
        c.machine.memory.write(spot, f"clone {i} was here".encode())
    for i, c in enumerate(clones):
        assert c.machine.memory.read(spot, 16) == f"clone {i} was here".encode()
    host.send_input("clone2", b"exit 7\r")
    ended = await host.wait_until_ended("clone2", timeout=20)
    assert ended.exit_code == 7
    for n in ("clone0", "clone1", "clone3"):
        assert host.get(n).state == State.RUNNING
        host.send_input(n, f"echo {n} still here\r".encode())
        await host.wait_for_output(n, f"{n} still here\r\n".encode(), timeout=30)
    assert digest(path) == file_digest, "a clone wrote through to the snapshot file"


async def test_snapshot_of_a_restored_guest_keeps_unfaulted_memory(host, tmp_path):
    """A restored guest reads pages of its file it never faulted in: a snapshot of it must
    still hold them (the page map of the file it came from is a hint to the saver)."""
    await host.create(GuestSpec("counter", name="a"))
    await wait_count(host, "a", 1)
    first = tmp_path / "first.snap"
    await host.snapshot("a", first)
    await host.kill("a")
    r = await host.restore(first, name="b", start=False)       # never run: nothing faulted in
    second = tmp_path / "second.snap"
    await host.snapshot("b", second)
    with snapshot.open_snapshot(str(first)) as s1, snapshot.open_snapshot(str(second)) as s2:
        assert s1.data_bytes == s2.data_bytes > 0
        assert [list(r.runs) for r in s1.regions] == [list(r.runs) for r in s2.regions]
    r.machine.start()
    await wait_count(host, "b", 3)


def _shell(name: str):
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    return Machine(MachineConfig(name=name, image=images.resolve("shell"), memory_mib=16, watchdog_s=0))


def test_snapshots_in_the_middle_of_io_are_byte_exact(tmp_path):
    """Pause lands right after a port-I/O exit (the shell busy reading input and printing):
    the half-done IN/OUT must be completed before the vCPU is saved, or the restored guest
    repeats an OUT or loses an IN byte. 20 save/restore generations while `help` runs give
    exactly the console of one guest that was never interrupted."""
    from hvtui.vmm.machine import Machine
    path = str(tmp_path / "io.snap")
    m = _shell("io0")
    m.start()
    time.sleep(0.3)
    stream = m.read_console()
    for i in range(20):
        m.push_input(b"help\r")
        time.sleep(0.001 + (i % 10) * 0.002)
        m.pause()
        m.snapshot(path)
        stream += m.read_console()            # all it printed up to the pause
        m.stop()
        m.destroy()
        with snapshot.open_snapshot(path) as snap:
            m = Machine.from_snapshot(snap, f"io{i + 1}")
        m.start()
        time.sleep(0.08)
    time.sleep(0.3)
    m.stop()
    stream += m.read_console()
    m.destroy()
    ref = _shell("ref")
    ref.start()
    time.sleep(0.3)
    for _ in range(20):
        ref.push_input(b"help\r")
        time.sleep(0.08)
    time.sleep(0.3)
    ref.stop()
    expect = ref.read_console()
    ref.destroy()
    assert expect.count(b"commands:") == 20
    assert stream == expect


# ---- bad input ----
@pytest.fixture(scope="module")
def good_snapshot(tmp_path_factory):
    """A real snapshot of a running counter (made once for the corruption cases)."""
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    m = Machine(MachineConfig(name="victim", image=images.resolve("counter"), memory_mib=16))
    try:
        m.start()
        time.sleep(0.3)
        path = tmp_path_factory.mktemp("snap") / "good.snap"
        m.snapshot(str(path))
    finally:
        m.stop()
        m.destroy()
    return path


def _header(path):
    with open(path, "rb") as f:
        return snapshot.HEADER.unpack_from(f.read(snapshot.HEADER.size))


def _corrupt(src, dst, kind: str) -> None:
    data = bytearray(open(src, "rb").read())
    (_, _, _, state_off, state_len, mem_off, mem_len, map_off, map_len, *_rest) = _header(src)
    with snapshot.open_snapshot(str(src)) as s:
        region = s.regions[0]
        first_data = mem_off + region.offset + region.runs[0] * snapshot.PAGE
        data_pages = {p for a, n in zip(region.runs[0::2], region.runs[1::2]) for p in range(a, a + n)}
    hole = mem_off + region.offset + next(p for p in range(region.size // snapshot.PAGE)
                                          if p not in data_pages) * snapshot.PAGE
    flip = {
        "magic": 0, "version": 8, "header padding": 3000, "state": state_off + state_len // 2,
        "memory data": first_data + 100, "memory hole": hole + 7, "page map": map_off + map_len - 3,
        "checksum table": len(data) - 2,
    }
    if kind == "truncated":
        del data[-1]
    elif kind == "truncated to the header":
        del data[snapshot.PAGE:]
    elif kind == "empty":
        data = bytearray()
    elif kind == "appended":
        data += b"\0"
    else:
        data[flip[kind]] ^= 0x01
    with open(dst, "wb") as f:
        f.write(data)


# A bad memory page is not among these: the file opens, and the page is refused when it is
# first used (tests/test_lazy_restore.py); `snapshot info` checks every page (below).
CORRUPTIONS = {
    "magic": "wrong magic", "version": "format version", "header padding": "header checksum",
    "state": "state section checksum", "checksum table": "checksum table mismatch",
    "page map": "page map checksum",
    "truncated": "truncated", "truncated to the header": "truncated", "empty": "wrong magic",
    "appended": "longer than",
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
async def test_bad_file_is_refused_untouched(host, good_snapshot, tmp_path, kind):
    bad = tmp_path / "bad.snap"
    _corrupt(good_snapshot, bad, kind)
    before, mtime = digest(bad), os.stat(bad).st_mtime_ns
    with pytest.raises(SnapshotError, match=CORRUPTIONS[kind]):
        await host.restore(bad, name="never")
    assert host.guests == {}                      # no machine created
    assert digest(bad) == before and os.stat(bad).st_mtime_ns == mtime


@pytest.mark.parametrize("kind,message", [("memory data", r"memory page at gpa 0x[0-9a-f]+ fails its checksum"),
                                          ("memory hole", "data in a zero page")])
def test_snapshot_info_checks_every_page(good_snapshot, tmp_path, kind, message):
    """A restore checks a page when it is first used; `snapshot info` (and a restore
    without a userfaultfd) checks them all up front, holes included."""
    bad = tmp_path / "bad.snap"
    _corrupt(good_snapshot, bad, kind)
    with snapshot.open_snapshot(str(bad)):
        pass                                      # the sections and the table are sound
    with pytest.raises(SnapshotError, match=message):
        snapshot.verify(str(bad), pages=True)


def test_foreign_cpu_is_refused(good_snapshot, tmp_path, monkeypatch):
    """A well-formed snapshot whose CPUID fingerprint is not this host's."""
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    foreign = tmp_path / "foreign.snap"
    m = Machine(MachineConfig(name="far", image=images.resolve("counter"), memory_mib=8))
    try:
        monkeypatch.setattr(Kvm, "cpuid_fingerprint", lambda self: "ab" * 32)
        m.snapshot(str(foreign))
        monkeypatch.undo()
    finally:
        m.destroy()
    before = digest(foreign)
    with snapshot.open_snapshot(str(foreign)) as snap:       # well-formed...
        with pytest.raises(SnapshotError, match="different host CPU"):
            Machine.from_snapshot(snap, "x")                 # ...but not for this CPU
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", str(foreign), "--log-dir", str(tmp_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and r.stdout == b""
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "different host CPU" in lines[0], lines
    assert digest(foreign) == before


def test_cli_bad_file_one_line_exit_1(good_snapshot, tmp_path):
    bad = tmp_path / "flipped.snap"
    _corrupt(good_snapshot, bad, "state")
    for args in (["run", str(bad), "--log-dir", str(tmp_path)], ["snapshot", "info", str(bad)]):
        r = subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=60)
        assert r.returncode == 1 and r.stdout == b""
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and "checksum mismatch" in lines[0], lines
    assert list(tmp_path.glob("*.log")) == []     # no guest was made, so no log


# ---- crash safety ----
def _open_unnamed_files(pid: int, directory) -> list[str]:
    """Files a process holds open in directory that have no name there (O_TMPFILE)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/") and target.endswith("(deleted)"):
            found.append(target)
    return found


def test_sigkill_mid_save_leaves_the_previous_file_and_no_litter(good_snapshot, tmp_path):
    """A save killed half-way: the previous file is intact, and nothing of the half-written
    one is left behind (it was an unnamed O_TMPFILE: not even until the next save)."""
    path = tmp_path / "precious.snap"
    path.write_bytes(good_snapshot.read_bytes())
    old = digest(path)
    env = dict(os.environ, **{snapshot.STALL_ENV: "60"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "hvtui", "run", "counter", "--snapshot-after", "0.2", "--snapshot-to", str(path),
         "--timeout", "90", "--log-dir", str(tmp_path / "logs")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        unnamed = []
        while not unnamed and time.monotonic() < deadline:     # the save is under way...
            unnamed = _open_unnamed_files(proc.pid, tmp_path)
            time.sleep(0.05)
        assert unnamed, "the save never started"
        time.sleep(0.5)                                       # ...and stalled half-written
        assert proc.poll() is None
        assert sorted(os.listdir(tmp_path)) == ["logs", "precious.snap"]   # it has no name
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert digest(path) == old                                # the previous file, intact
    snapshot.verify(str(path))
    assert sorted(os.listdir(tmp_path)) == ["logs", "precious.snap"]       # and no litter at all
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    m = Machine(MachineConfig(name="next", image=images.resolve("counter"), memory_mib=8))
    try:
        m.snapshot(str(path))
    finally:
        m.destroy()
    assert digest(path) != old and snapshot.verify(str(path))["name"] == "next"
    assert sorted(os.listdir(tmp_path)) == ["logs", "precious.snap"]


def test_stale_named_temporaries_are_swept(good_snapshot, tmp_path):
    """Where a temporary had a name (a filesystem without O_TMPFILE, or a kill between the
    link and the rename), the next save at that path removes it if its process is gone."""
    path = tmp_path / "p.snap"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    litter = tmp_path / f".p.snap{snapshot.TMP_MARK}{int(dead.stdout)}-deadbeef"
    litter.write_bytes(b"half a snapshot")
    from hvtui import images
    from hvtui.vmm.machine import Machine, MachineConfig
    m = Machine(MachineConfig(name="n", image=images.resolve("counter"), memory_mib=8))
    try:
        m.snapshot(str(path))
    finally:
        m.destroy()
    assert sorted(os.listdir(tmp_path)) == ["p.snap"]


# ---- CLI ----
def test_cli_run_snapshot_after_then_restore(tmp_path):
    snap = tmp_path / "run.snap"
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", "counter", "--snapshot-after", "0.4",
                        "--snapshot-to", str(snap), "--timeout", "1.2", "--log-dir", str(tmp_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 124, r.stderr
    ran = counts(r.stdout)
    assert ran == list(range(len(ran))) and len(ran) >= 6      # the guest went on after the snapshot
    info = subprocess.run([sys.executable, "-m", "hvtui", "snapshot", "info", str(snap)],
                          capture_output=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert b"verified" in info.stdout and b"counter.elf" in info.stdout and b"64 MiB" in info.stdout
    r2 = subprocess.run([sys.executable, "-m", "hvtui", "run", str(snap), "--name", "again",
                         "--timeout", "0.8", "--log-dir", str(tmp_path)], capture_output=True, timeout=60)
    assert r2.returncode == 124, r2.stderr
    cont = counts(r2.stdout)
    assert cont and cont == list(range(cont[0], cont[0] + len(cont)))
    assert 1 <= cont[0] < len(ran)                              # it picked up mid-run, not from 0
    assert (tmp_path / "again.log").exists()


def test_cli_restore_shell_exit_status(tmp_path):
    """`hvtui run SNAPSHOT` continues it in the foreground: stdin in, the guest's status out."""
    snap = tmp_path / "sh.snap"
    r = subprocess.run([sys.executable, "-m", "hvtui", "run", "shell", "--snapshot-after", "0.5",
                        "--snapshot-to", str(snap), "--timeout", "0.8", "--log-dir", str(tmp_path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 124 and b"hvtui> " in r.stdout
    r2 = subprocess.run([sys.executable, "-m", "hvtui", "run", str(snap), "--log-dir", str(tmp_path)],
                        input=b"echo restored shell\nexit 9\n", capture_output=True, timeout=60)
    assert b"restored shell\r\n" in r2.stdout
    assert r2.returncode == 9, r2.stderr


def test_bench_snapshot_json(tmp_path):
    import json
    r = subprocess.run([sys.executable, "-m", "hvtui", "bench", "snapshot", "--json", "--runs", "1",
                        "--sizes", "16,32", "--touched", "4"], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["save_ms"]) == set(out["restore_ms"]) == {"16", "32"}
    assert out["restore_growth"] > 0 and out["kvm"] in ("pvm", "hw")
    for row in out["sizes"]:                    # each file is the guest's memory, mostly holes
        assert row["file_bytes"] >= row["memory_mib"] << 20
        assert row["data_bytes"] < 1 << 20 and row["allocated_bytes"] < 2 << 20
        assert len(row["save_runs"]) == len(row["restore_runs"]) == 1
    row, plain = out["touched"][0], out["sizes"][1]
    assert row["touched_mib"] == 4 and row["memory_mib"] == plain["memory_mib"] == 32
    # the 4 MiB written are saved, exactly: what it measures is touched memory, not guest size
    assert 4 << 20 <= row["data_bytes"] - plain["data_bytes"] <= (4 << 20) + (64 << 10), (row, plain)
    assert row["allocated_bytes"] >= 4 << 20 > plain["allocated_bytes"]
