"""The gdb server as a kernel writer uses it: `hvtui run KERNEL --gdb 127.0.0.1:PORT` and
Debian's gdb in batch mode, on real KVM. The kernel is guests/pc/gdbtest (a Multiboot
ELF64 with symbols): tick(i) in a loop adds i to the global gdb_counter, the_value()
leaves 42 in RAX at the symbol value_ready, and it prints both. What gdb prints and what
the kernel prints are what the tests check.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvtui import images

pytestmark = pytest.mark.kvm
needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed (apt-get install gdb)")

GDBTEST = images.resolve("gdbtest")
SOURCE = Path(__file__).parent.parent / "guests" / "pc" / "gdbtest.c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kvm_caps():
    from hvtui.vmm.debug import host_caps
    from hvtui.vmm.kvm import Kvm
    return host_caps(Kvm.get())


class Guest:
    """`hvtui run IMAGE --gdb 127.0.0.1:PORT -v ...` in the background, its console in a file."""

    def __init__(self, tmp_path: Path, *args: str, image: str = GDBTEST):
        self.port = free_port()
        self.out, self.err = tmp_path / "console.txt", tmp_path / "stderr.txt"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hvtui", "run", image, "--gdb", f"127.0.0.1:{self.port}", "-v",
             "--log-dir", str(tmp_path / "logs"), "--timeout", "60", *args],
            stdin=subprocess.DEVNULL, stdout=self.out.open("wb"), stderr=self.err.open("wb"))
        self.wait_for("gdb server: target remote 127.0.0.1:", where="stderr")

    def console(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, text: str, where: str = "console", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in (self.console() if where == "console" else self.stderr()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} never came on {where}: {self.console()!r} {self.stderr()!r}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def guest(tmp_path):
    started = []

    def start(*args, **kw) -> Guest:
        g = Guest(tmp_path, *args, **kw)
        started.append(g)
        return g
    yield start
    for g in started:
        g.kill()


def gdb_args(port: int, commands, elf: str | None = GDBTEST, pre=()) -> list[str]:
    args = ["gdb", "-batch", "-nx"]
    for c in pre:
        args += ["-ex", c]
    if elf:
        args += ["-ex", f"file {elf}"]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        args += ["-ex", c]
    return args


def gdb(port: int, *commands: str, timeout: float = 60, **kw) -> str:
    r = subprocess.run(gdb_args(port, commands, **kw), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.stdout + r.stderr


def source_line(text: str) -> int:
    return next(i for i, line in enumerate(SOURCE.read_text().splitlines(), 1) if text in line)


def values(out: str) -> list[str]:
    """What gdb's print commands printed, in order ($1 = ..., $2 = ...)."""
    return re.findall(r"^\$\d+ = (.*)$", out, re.M)


# ---- the "must show" ----
@needs_gdb
def test_breakpoint_step_next_variable_register_and_exit(guest):
    g = guest("--gdb-wait")
    loop_line = source_line("u64 counter = tick(i);")
    out = gdb(g.port,
              "break tick", "continue", "p/x $pc", "p gdb_counter", "p n",
              "continue", "p gdb_counter", "x/2i $pc", "stepi", "p/x $pc",
              "next", "p gdb_counter",
              "delete", f"break gdbtest.c:{loop_line}", "continue", "next",
              "delete", "hbreak *value_ready", "continue", "p $rax", "set var $rax = 99",
              "delete", "continue")
    bp = re.search(r"Breakpoint 1 at (0x[0-9a-f]+): file gdbtest.c, line (\d+)\.", out)
    assert bp, out
    assert "Breakpoint 1, tick (n=1) at gdbtest.c" in out
    v = values(out)
    assert v[0] == bp.group(1), out                  # stopped with rip at the breakpoint
    assert v[1:4] == ["0", "1", "1"]                 # gdb_counter before tick(1), n, then after it
    assert "Breakpoint 1, tick (n=2) at gdbtest.c" in out
    following = re.findall(r"^(?:=> )?\s*(0x[0-9a-f]+) <tick\+\d+>:", out, re.M)
    assert v[4] == following[1], out                 # stepi: exactly the next instruction
    assert re.search(r"^20\s+return gdb_counter;", out, re.M), out   # next: the next line
    assert v[5] == "3"                               # gdb_counter += 2 happened
    assert re.search(rf"^{loop_line + 1}\s+pc_puts\(\"tick \"\);", out, re.M), out   # next stepped over tick()
    assert "the_value () at gdbtest.c" in out and v[6] == "42"
    assert "exited normally" in out
    assert g.finish() == 0
    console = g.console()
    assert "tick 1 counter 1\ntick 2 counter 3\ntick 3 counter 6\n" in console
    assert "gdbtest: value 99\n" in console          # the register we set is what it printed


@needs_gdb
def test_ctrl_c_stops_a_running_guest_and_continue_loses_nothing(guest):
    g = guest("--gdb-wait", "--append", "ticks=25 delay=100")
    proc = subprocess.Popen(gdb_args(g.port, ["continue", "p gdb_counter", "info threads", "continue"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        g.wait_for("tick 4 ")
        proc.send_signal(signal.SIGINT)           # what Ctrl-C in gdb does: an interrupt to the stub
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Program received signal SIGINT, Interrupt." in out, out
    counter = int(values(out)[0])
    k = next(k for k in range(100) if k * (k + 1) // 2 >= counter)
    assert k * (k + 1) // 2 == counter, out          # stopped between two whole ticks
    assert "Thread 1 (vCPU 0, long mode, CPL 0)" in out
    assert "exited normally" in out
    assert g.finish() == 0
    lines = [line for line in g.console().splitlines() if line.startswith("tick ")]
    assert lines == [f"tick {i} counter {i * (i + 1) // 2}" for i in range(1, 26)]


@needs_gdb
def test_gdb_wait_holds_the_guest_before_its_first_instruction(guest):
    g = guest("--gdb-wait")
    time.sleep(1.0)
    assert g.console() == ""                        # not one instruction ran: nothing printed
    out = gdb(g.port, "p/x $pc", "info symbol $pc", "info registers eflags cs", "continue")
    entry = subprocess.run(["readelf", "-h", GDBTEST], capture_output=True, text=True).stdout
    assert values(out)[0] == re.search(r"Entry point address:\s+(0x[0-9a-f]+)", entry).group(1)
    assert "_start in section .text" in out
    assert "exited normally" in out
    assert g.finish() == 0
    assert g.console().startswith("gdbtest: start\n")


@needs_gdb
def test_a_second_client_is_refused_and_detach_lets_the_guest_run_on(guest):
    g = guest("--gdb-wait", "--append", "ticks=6 delay=50")
    first = subprocess.Popen(gdb_args(g.port, ["break tick", "continue", "shell sleep 4", "detach"]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        g.wait_for("stopped by gdb: vCPU 0: breakpoint", where="stderr")
        second = gdb(g.port, "p $pc", timeout=30)
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert re.search(r"Remote failure reply: E\.hvtui: guest gdbtest-\d+ already has a debugger attached",
                     second), second
    assert "Breakpoint 1, tick (n=1)" in out and "[Inferior 1 (Remote target) detached]" in out, out
    assert g.finish() == 0                          # the guest ran on to its end after the detach
    assert "tick 6 counter 21\ngdbtest: value 42\n" in g.console()


@needs_gdb
def test_a_debugger_that_vanishes_leaves_the_guest_running(guest):
    g = guest("--gdb-wait", "--append", "ticks=4")
    proc = subprocess.Popen(gdb_args(g.port, ["break tick", "continue", "python import time; time.sleep(60)"]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        g.wait_for("stopped by gdb: vCPU 0: breakpoint", where="stderr")
        proc.kill()                                 # gdb dies with the guest stopped at a breakpoint
        proc.wait()
        assert g.finish(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "tick 4 counter 10\ngdbtest: value 42\n" in g.console()
    assert "gdb detached" in g.stderr()


# ---- what the host can and cannot do ----
@needs_gdb
def test_refusals_are_said(guest):
    """Four hardware slots; then gdb shows the reason for hbreak, and hvtui's stderr and
    `monitor host` for what gdb 13 shows no reason for (a breakpoint, a watchpoint)."""
    caps = kvm_caps()
    g = guest("--gdb-wait")
    out = gdb(g.port, "hbreak tick", "hbreak the_value", "hbreak kmain64", "hbreak pc_putc", "hbreak pc_dec",
              "continue", "delete 5", "rwatch gdb_counter", "continue", "monitor host", "delete", "continue")
    assert ("Cannot insert hardware breakpoint 5:Remote failure reply: "
            "all 4 hardware breakpoint slots are in use.") in out
    assert "Could not insert hardware watchpoint" in out
    err = g.stderr()
    assert re.search(r"refused hardware breakpoint at 0x[0-9a-f]+: all 4 hardware breakpoint slots are in use", err)
    assert "refused read watchpoint at 0x" in err and "cannot watch reads alone; use awatch" in err
    assert f"host KVM: {caps.host}" in out
    assert "last refusal: read watchpoint at 0x" in out
    assert g.finish() == 0


@needs_gdb
def test_on_this_host_breakpoints_take_a_slot_and_watchpoints_are_refused(guest):
    caps = kvm_caps()
    if caps.watchpoints or caps.sw_breakpoints:
        pytest.skip(f"this host's KVM ({caps.host}) has int3 and watchpoints: see the tests that use them")
    g = guest("--gdb-wait")
    out = gdb(g.port, "break tick", "break the_value", "break kmain64", "break pc_putc", "break pc_dec",
              "continue", "delete 5", "watch gdb_counter", "continue", "monitor host", "delete", "continue")
    assert "Cannot insert breakpoint 5." in out and "Could not insert hardware watchpoint" in out
    assert "software breakpoints (int3): no: every breakpoint takes a hardware slot" in out
    assert "watchpoints: no: this host never fires them" in out
    err = g.stderr()
    assert "all 4 hardware breakpoint slots are in use (this host's KVM, KVM-PVM" in err
    assert "cannot do int3 breakpoints" in err
    assert re.search(r"refused watchpoint at 0x[0-9a-f]+: this host's KVM \(KVM-PVM.*never fires data watchpoints", err)
    assert g.finish() == 0


@needs_gdb
def test_cpl3_code_cannot_be_stepped_here(guest):
    """The tiny guests run at CPL 3, which KVM-PVM neither steps nor stops: gdb is told."""
    caps = kvm_caps()
    if caps.user_mode:
        pytest.skip(f"this host's KVM ({caps.host}) debugs CPL-3 code too")
    g = guest("--timeout", "20", image="counter")
    g.wait_for("count 2")
    out = gdb(g.port, "p $cs", "stepi", "detach", elf=images.resolve("counter"))
    assert values(out)[0] == "35"                   # CS 0x23: user mode
    assert "cannot single-step vCPU 0: it runs at CPL 3" in out
    g.wait_for("count 8")                           # detached: it counts on


@needs_gdb
def test_watchpoints_fire_where_the_host_can(guest):
    caps = kvm_caps()
    if not caps.watchpoints:
        pytest.skip(f"needs a host whose KVM fires data watchpoints (VT-x or AMD-V); this one is {caps.host}")
    g = guest("--gdb-wait")
    out = gdb(g.port, "watch gdb_counter", "continue", "p gdb_counter", "delete", "continue")
    assert "Hardware watchpoint 1: gdb_counter" in out and "New value = 1" in out
    assert g.finish() == 0


@needs_gdb
def test_int3_breakpoints_where_the_host_can(guest):
    caps = kvm_caps()
    if not caps.sw_breakpoints:
        pytest.skip(f"needs a host whose KVM runs int3 (VT-x or AMD-V); this one is {caps.host}")
    g = guest("--gdb-wait")
    out = gdb(g.port, "break tick", "break the_value", "break kmain64", "break pc_putc", "break pc_dec",
              "break pc_puts", "continue", "x/bx tick", "delete", "continue")
    assert "Breakpoint 3, kmain64" in out           # six breakpoints: more than the four slots
    assert "0x55" in out.split("x/bx")[-1] or re.search(r"<tick>:\s+0x55", out)   # memory reads as before
    assert g.finish() == 0


# ---- threads and monitor commands ----
@needs_gdb
def test_one_thread_per_vcpu_and_monitor_commands(guest):
    """The SMP kernel (32-bit, so gdb is told the architecture, as with QEMU): each vCPU is a
    thread; the AP stops at its own breakpoint and the stop names it."""
    g = guest("--gdb-wait", "--vcpus", "2", image="smp")
    out = gdb(g.port, "info threads", "monitor state", "monitor registers", "break smp_ap_main", "continue",
              "info threads", "delete", "continue",
              elf=images.resolve("smp"), pre=["set architecture i386:x86-64"])
    assert re.search(r"\* 1\s+Thread 1 \(vCPU 0, protected mode, CPL 0\) 0x0+10000c in _start", out), out
    assert "Thread 2 (vCPU 1, real mode, CPL 0)" in out
    assert re.search(r"guest smp-\d+: running \(stopped by the debugger\)", out)
    assert out.count("rip=") == 2 and "rip=0x000000000010000c" in out
    assert "Thread 2 hit Breakpoint 1, 0x" in out and "in smp_ap_main ()" in out
    assert re.search(r"\* 2\s+Thread 2 \(vCPU 1, protected mode, CPL 0\)", out)
    assert g.finish() == 0
    assert "smp: all 2 up" in g.console()


# ---- the protocol against bad input ----
class Client:
    """A bare RSP client: what a broken or hostile debugger could send."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> None:
        self.send_raw(b"$" + payload + b"#%02x" % (sum(payload) & 0xFF))

    def reply(self) -> bytes:
        while True:
            m = re.match(rb"^[+-]*\$([^#]*)#[0-9a-f]{2}", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m.group(1)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.reply()


def test_malformed_and_oversized_packets_get_error_replies(guest):
    g = guest("--gdb-wait", "--append", "ticks=2")
    c = Client(g.port)
    assert c.ask(b"?").startswith(b"T05thread:1;")
    assert c.ask(b"mzz,4") == b"E01"                        # not hex
    assert c.ask(b"m100000") == b"E01"                      # no length
    assert c.ask(b"m" + b"f" * 40 + b",4") == b"E01"        # beyond 64 bits
    assert c.ask(b"mffffffff00000000,4") == b"E14"          # unmapped: an error, not a crash
    assert c.ask(b"M100000,4:00") == b"E01"                 # data shorter than its length
    assert c.ask(b"Z9,100000,1") == b"E01"
    assert c.ask(b"vCont;x") == b"E01"
    assert c.ask(b"Hg99") == b"E01"
    assert c.ask(b"p9999") == b"E01"
    c.send_raw(b"$" + b"m" * 20000 + b"#00")                 # longer than PacketSize
    assert c.reply() == b"E01"
    c.send_raw(b"$g#00")                                     # bad checksum: a NAK, nothing done
    time.sleep(0.2)
    assert c.sock.recv(16) == b"-"
    assert c.ask(b"qSupported:swbreak+").startswith(b"PacketSize=4000;")
    assert c.ask(b"m10000c,2") == b"fafc"                    # still serving: cli; cld at _start
    assert c.ask(b"qRcmd," + b"state".hex().encode()).startswith(b"O")
    while c.reply() != b"OK":
        pass
    c.send(b"c")
    c.send(b"g")                                            # while it runs: refused, not blocked
    assert sorted([c.reply(), c.reply()]) == [b"E01", b"W00"]   # it ran to its end, exit status 0
    assert g.finish() == 0
    assert "tick 2 counter 3\n" in g.console()


@needs_gdb
@pytest.mark.parametrize("image, mode", [("mb1", "protected mode"), ("mb2", "protected mode"),
                                         ("pvh", "protected mode"), ("bzimage", "long mode")])
def test_every_boot_protocol_stops_at_its_entry_and_steps(guest, image, mode):
    """Whatever the protocol and CPU mode, gdb (here with no symbol file) stops at the entry
    the loader chose, steps from there and lets the kernel run to its end."""
    g = guest("--gdb-wait", image=image)
    out = gdb(g.port, "info threads", "p/x $pc", "stepi", "p/x $pc", "continue", elf=None)
    assert f"Thread 1 (vCPU 0, {mode}, CPL 0)" in out, out
    before, after = (int(v, 16) for v in values(out)[:2])
    assert 0 < after - before <= 15, out             # one instruction further
    assert "exited normally" in out
    assert g.finish() == 0
    assert "boot: done" in g.console()


def test_gdb_options_are_checked(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "hvtui", "run", "gdbtest", "--log-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    r = run("--gdb-wait")
    assert r.returncode == 2 and "--gdb-wait needs --gdb [HOST:]PORT" in r.stderr
    r = run("--gdb", "localhost:http")
    assert r.returncode == 2 and "expected [HOST:]PORT with a port from 0 to 65535" in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run("--gdb", str(busy.getsockname()[1]))
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on 127.0.0.1:" in lines[0] and "in use" in lines[0], lines


@needs_gdb
def test_a_crash_stops_in_gdb_where_it_happened(guest):
    g = guest("--gdb-wait", "--cmdline", "triple", image="crash")
    out = gdb(g.port, "continue", "p/x $pc", "x/i $pc", "continue", elf=images.resolve("crash"))
    assert re.search(r"hvtui: crash-\d+ crashed: triple fault \(vcpu 0, rip=0x([0-9a-f]+)\)", out), out
    rip = re.search(r"rip=(0x[0-9a-f]+)", out).group(1)
    assert "Program received signal SIGSEGV" in out and re.search(rf"0x0*{rip[2:]} in hv_crash \(\)", out)
    assert values(out)[0] == rip                     # its registers and memory stay readable
    assert "Program terminated with signal SIGSEGV" in out
    assert g.finish() == 3


@needs_gdb
def test_kill_ends_the_guest(guest):
    g = guest("--gdb-wait")
    out = gdb(g.port, "break tick", "continue", "kill")
    assert "[Inferior 1 (Remote target) killed]" in out
    assert g.finish() == 0
    assert "killed by the debugger" in g.stderr()
    assert "tick 1" not in g.console()
