"""`hvtui bench startup`: how long a one-shot guest takes, as a user feels it.

The same tiny PVH kernel (tinykernel.py: one line on COM1, then the debug-exit port) is
run by `hvtui run` and, when it is installed, by `qemu-system-x86_64 -M microvm`, each as
a fresh process, interleaved, --runs times. Measured from the process's start: the time to
the guest's first line on stdout, and to the process's exit. Medians; ratio = hvtui / QEMU
(to exit; first_line_ratio to the first line). One unmeasured run of each comes first (the
page cache, Python's bytecode cache). The hvtui child runs with Python's bytecode cache on,
as an installed hvtui does (pip compiles it at install): a PYTHONDONTWRITEBYTECODE in the
caller's environment would make every run compile every module again (~55 ms on the
reference machine), which measures the environment rather than hvtui. It runs in the
kernel's temporary folder: `-m` puts the current folder first on sys.path, and from a
clone of hvtui it would run the clone's sources rather than the installed package.

Three floors run in the same interleaved rounds, so that the distance to QEMU can be
read against what Python itself costs here: the interpreter doing nothing (`-c pass`),
the interpreter importing asyncio (what any monitor built on an asyncio loop pays before
it does anything: hvtui's Host is one), and the interpreter importing hvtui's machine
layer alone (hvtui.vmm.machine: no asyncio, no CLI, no Host). Each is timed to its exit.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from hvtui.bench.tinykernel import LINE, pvh_hello
from hvtui.vmm.kvm import Kvm

QEMU = "qemu-system-x86_64"


def hvtui_command(kernel: str, log_dir: str) -> list[str]:
    return [sys.executable, "-m", "hvtui", "run", kernel, "--log-dir", log_dir]


def qemu_command(kernel: str) -> list[str]:
    return [QEMU, "-M", "microvm", "-enable-kvm", "-cpu", "host", "-m", "64", "-nodefaults",
            "-no-user-config", "-nographic", "-serial", "stdio", "-kernel", kernel,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


def hvtui_env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


FLOORS = {"python": "pass", "asyncio": "import asyncio", "machine_layer": "import hvtui.vmm.machine"}


def floor_command(what: str) -> list[str]:
    return [sys.executable, "-c", FLOORS[what]]


def time_exit(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> float:
    """ms from the process's start to its exit (a floor: nothing on stdout)."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                       cwd=cwd)
    dt = (time.perf_counter() - t0) * 1e3
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.decode(errors='replace').strip()[-200:]}")
    return dt


def time_one(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, float]:
    """(ms to the first line on stdout, ms to exit)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                         cwd=cwd)
    first = p.stdout.readline()
    t_first = time.perf_counter()
    p.stdout.read()
    p.wait()
    t_exit = time.perf_counter()
    if LINE.strip() not in first:
        raise RuntimeError(f"{cmd[0]}: the guest's line did not come out (got {first[:60]!r})")
    return (t_first - t0) * 1e3, (t_exit - t0) * 1e3


def measure(runs: int = 7) -> dict:
    kvm = Kvm.get()
    has_qemu = shutil.which(QEMU) is not None
    with tempfile.TemporaryDirectory(prefix="hvtui-bench-startup-") as d:
        kernel = os.path.join(d, "hello-pvh.elf")
        with open(kernel, "wb") as f:
            f.write(pvh_hello())
        ours, theirs = [], []
        floors: dict[str, list[float]] = {what: [] for what in FLOORS}
        env = hvtui_env()
        time_one(hvtui_command(kernel, d), env, cwd=d)        # warm-up, unmeasured
        for what in FLOORS:
            time_exit(floor_command(what), env, cwd=d)
        if has_qemu:
            time_one(qemu_command(kernel))
        for _ in range(runs):
            ours.append(time_one(hvtui_command(kernel, d), env, cwd=d))
            for what in FLOORS:
                floors[what].append(time_exit(floor_command(what), env, cwd=d))
            if has_qemu:
                theirs.append(time_one(qemu_command(kernel)))
    med = statistics.median
    out = {"kvm": kvm.kind, "runs": runs,
           "hvtui_first_line_ms": round(med(t for t, _ in ours), 1),
           "hvtui_ms": round(med(t for _, t in ours), 1),
           "qemu_first_line_ms": None, "qemu_ms": None, "first_line_ratio": None, "ratio": None,
           "hvtui_range_ms": [round(min(t for _, t in ours), 1), round(max(t for _, t in ours), 1)],
           "floor_ms": {what: round(med(ts), 1) for what, ts in floors.items()}, "floor_ratio": None}
    if theirs:
        out.update(qemu_first_line_ms=round(med(t for t, _ in theirs), 1), qemu_ms=round(med(t for _, t in theirs), 1))
        out["ratio"] = round(out["hvtui_ms"] / out["qemu_ms"], 2)
        out["first_line_ratio"] = round(out["hvtui_first_line_ms"] / out["qemu_first_line_ms"], 2)
        out["floor_ratio"] = {what: round(ms / out["qemu_ms"], 2) for what, ms in out["floor_ms"].items()}
    return out


def main(args) -> int:
    r = measure(args.runs)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"KVM: {r['kvm']}   {r['runs']} interleaved runs of the same tiny PVH kernel, medians")
    print(f"  hvtui run          first line {r['hvtui_first_line_ms']:7.1f} ms   exit {r['hvtui_ms']:7.1f} ms")
    if r["qemu_ms"] is None:
        print(f"  {QEMU} is not installed: no reference in this run")
    else:
        print(f"  QEMU -M microvm    first line {r['qemu_first_line_ms']:7.1f} ms   exit {r['qemu_ms']:7.1f} ms")
        print(f"  ratio hvtui / QEMU           first line {r['first_line_ratio']:7.2f}      exit {r['ratio']:7.2f}")
    print("  floors, to exit (the same interpreter and environment, nothing of the guest):")
    for what, code in FLOORS.items():
        ratio = f"   {r['floor_ratio'][what]:5.2f} of QEMU" if r["floor_ratio"] else ""
        print(f"    python -c {code!r:28} {r['floor_ms'][what]:7.1f} ms{ratio}")
    sys.stdout.flush()
    return 0
