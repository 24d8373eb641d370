"""`hvtui bench snapshot`: what a snapshot costs, and whether it grows with guest size.

For each guest size (64 MiB .. 4 GiB by default) a counter guest runs until it has
printed, is paused, and is then saved and restored --runs times:
  save_ms    - Machine.snapshot of the paused guest: vCPU/VM/device state, the non-zero
               pages out to a sparse file, fsync, rename;
  restore_ms - verify the file (header, state, page map and checksum table) and build a
               `created` machine from it (RAM served lazily from the file, each page
               checked on first touch: vmm/lazyram.py; all state set), ready to start.
Medians of the runs. restore_growth = restore_ms at the largest size / at the smallest
(the goal: <= 2, i.e. restore does not grow with guest size). The file's apparent size,
the bytes it holds on disk and the guest's touched (non-zero) memory are reported too.
A second series writes --touched MiB of data into a guest of the middle size first, to
show that save time and file size follow touched memory, not guest size.

The restore-touched series (restore_touched_ms) restores a shell guest of
RESTORE_GUEST_MIB that wrote RESTORE_TOUCHED MiB (64 and 1024): open_snapshot to a
`created` machine, as restore_ms. Beside it, honestly, what laziness defers:
  first_output_ms  - from start() of the restored guest to the echo of a key typed at
                     once (its code, stack and page tables are faulted in and checked);
  verified_ms      - from open_snapshot until the background prefetch has read and
                     checked every written page (the guest no longer needs the file).
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

from hvtui import images
from hvtui.vmm import snapshot
from hvtui.vmm.kvm import Kvm
from hvtui.vmm.machine import Machine, MachineConfig

MiB = 1 << 20
SETTLE_S = 0.1
RESTORE_TOUCHED = (64, 1024)     # MiB the guest wrote, for restore_touched_ms
RESTORE_GUEST_MIB = 2048


def _paused_counter(memory_mib: int) -> Machine:
    m = Machine(MachineConfig(name=f"bench{memory_mib}", image=images.resolve("counter"),
                              memory_mib=memory_mib, watchdog_s=0))
    try:
        m.start()
        _wait_output(m, b"count 1\r\n")
    except BaseException:
        m.destroy()
        raise
    m.pause()
    return m


def _wait_output(m: Machine, needle: bytes, timeout: float = 30) -> None:
    """Until the guest's console has printed needle (polled every 0.2 ms: first_output_ms
    times an echo with it)."""
    out, deadline = b"", time.monotonic() + timeout
    while needle not in out:
        if time.monotonic() > deadline or not m.state.live:
            raise RuntimeError(f"{m.name}: {needle!r} did not come out ({m.state.value} {m.stop_reason})")
        out += m.read_console()
        time.sleep(0.0002)


def _touch(m: Machine, mib: int) -> None:
    """Fill mib MiB of the guest's free low RAM (below its stacks) with non-zero data."""
    region = m.memory.regions[0]
    top = region.size - 4 * MiB
    pattern = (b"hvtui-bench!" * 350)[:4096]
    chunk = pattern * 256
    for off in range(top - mib * MiB, top, MiB):
        m.memory.write(off, chunk)


def measure_one(memory_mib: int, runs: int, directory: str, touched_mib: int = 0) -> dict:
    """Each run saves to a new path (replacing a file would add the filesystem's cost of
    freeing the old one) and restores from it; the kernel's teardown of the restored VM
    (hv_vm_destroy, ~16 ms on KVM-PVM, partly deferred) is given SETTLE_S to finish before
    the next timed step, so it is not billed to the next restore."""
    m = _paused_counter(memory_mib)
    saves, restores, path = [], [], None
    try:
        if touched_mib:
            _touch(m, touched_mib)
        resident = m.vm.resident_bytes()
        for run in range(runs):
            if path:
                os.unlink(path)
            path = os.path.join(directory, f"bench-{memory_mib}-{touched_mib}-{run}.snap")
            t0 = time.perf_counter()
            info = m.snapshot(path)
            saves.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            with snapshot.open_snapshot(path) as snap:
                r = Machine.from_snapshot(snap, "restored")
            restores.append((time.perf_counter() - t0) * 1e3)
            r.destroy()
            time.sleep(SETTLE_S)
    finally:
        m.destroy()
        if path:
            os.unlink(path)
    med = statistics.median
    return {
        "memory_mib": memory_mib, "touched_mib": touched_mib,
        "save_ms": round(med(saves), 2), "restore_ms": round(med(restores), 2),
        "file_bytes": info["file_size"], "allocated_bytes": info["allocated_bytes"],
        "data_bytes": info["data_bytes"], "resident_bytes": resident,
        "save_runs": [round(x, 2) for x in saves], "restore_runs": [round(x, 2) for x in restores],
    }


def measure_restore_touched(touched_mib: int, runs: int, directory: str,
                            memory_mib: int = RESTORE_GUEST_MIB) -> dict:
    """A shell guest that wrote touched_mib MiB, saved once and restored runs times."""
    m = Machine(MachineConfig(name=f"rt{touched_mib}", image=images.resolve("shell"),
                              memory_mib=memory_mib, watchdog_s=0))
    path = os.path.join(directory, f"restore-touched-{touched_mib}.snap")
    try:
        m.start()
        _wait_output(m, b"hvtui> ")
        m.pause()
        _touch(m, touched_mib)
        info = m.snapshot(path)
    finally:
        m.stop()
        m.destroy()
    restores, firsts, verified, lazy = [], [], [], True
    try:
        for _ in range(runs):
            t0 = time.monotonic_ns()
            with snapshot.open_snapshot(path) as snap:
                r = Machine.from_snapshot(snap, "restored")
            restores.append((time.monotonic_ns() - t0) / 1e6)
            try:
                t1 = time.perf_counter()
                r.start()
                r.push_input(b"x")
                _wait_output(r, b"x")
                firsts.append((time.perf_counter() - t1) * 1e3)
                lazy = r.lazy is not None
                if lazy:
                    deadline = time.monotonic() + 120
                    while (st := r.lazy.stats())["state"] == "running" and time.monotonic() < deadline:
                        time.sleep(0.001)
                    if st["state"] != "done":
                        raise RuntimeError(f"the prefetch ended {st['state']}")
                    verified.append((st["t_done_ns"] - t0) / 1e6)
            finally:
                r.stop()
                r.destroy()
            time.sleep(SETTLE_S)
    finally:
        os.unlink(path)
    med = statistics.median
    return {"memory_mib": memory_mib, "touched_mib": touched_mib, "lazy": lazy,
            "data_bytes": info["data_bytes"], "save_ms": round(info["save_ms"], 2),
            "restore_ms": round(med(restores), 2), "first_output_ms": round(med(firsts), 2),
            "verified_ms": round(med(verified), 1) if verified else None,
            "restore_runs": [round(x, 2) for x in restores], "first_output_runs": [round(x, 2) for x in firsts],
            "verified_runs": [round(x, 1) for x in verified]}


def measure(sizes: list[int], runs: int = 5, touched: list[int] | None = None,
            directory: str | None = None, restore_touched=RESTORE_TOUCHED) -> dict:
    kvm = Kvm.get()
    with tempfile.TemporaryDirectory(prefix="hvtui-bench-", dir=directory) as d:
        rows = [measure_one(size, runs, d) for size in sizes]
        middle = sizes[len(sizes) // 2]
        touched_rows = [measure_one(middle, runs, d, t) for t in (touched or [])]
        rt_rows = [measure_restore_touched(t, runs, d) for t in restore_touched]
    by = {str(r["memory_mib"]): r for r in rows}
    return {
        "kvm": kvm.kind,
        "runs": runs,
        "save_ms": {k: r["save_ms"] for k, r in by.items()},
        "restore_ms": {k: r["restore_ms"] for k, r in by.items()},
        "restore_growth": round(rows[-1]["restore_ms"] / rows[0]["restore_ms"], 3),
        "sizes": rows,
        "touched": touched_rows,
        "restore_touched_ms": {str(r["touched_mib"]): r["restore_ms"] for r in rt_rows},
        "first_output_ms": {str(r["touched_mib"]): r["first_output_ms"] for r in rt_rows},
        "verified_ms": {str(r["touched_mib"]): r["verified_ms"] for r in rt_rows},
        "restore_touched": rt_rows,
    }


def main(args) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    touched = [int(s) for s in args.touched.split(",") if s.strip()]
    middle = sizes[len(sizes) // 2]
    if any(t > middle // 2 for t in touched):
        print(f"hvtui: --touched must stay within half of the {middle} MiB guest", file=sys.stderr)
        return 2
    result = measure(sizes, args.runs, touched=touched)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"KVM: {result['kvm']}   counter guest, paused; medians of {result['runs']} runs")
    print(f"  {'guest':>9} {'save ms':>8} {'restore ms':>10} {'file':>10} {'on disk':>9} {'touched':>9}")
    for r in result["sizes"]:
        print(f"  {r['memory_mib']:>5} MiB {r['save_ms']:>8.2f} {r['restore_ms']:>10.2f} "
              f"{r['file_bytes'] / MiB:>6.0f} MiB {r['allocated_bytes'] >> 10:>5} KiB {r['data_bytes'] >> 10:>5} KiB")
    print(f"  restore_growth (restore at {result['sizes'][-1]['memory_mib']} MiB / at "
          f"{result['sizes'][0]['memory_mib']} MiB) = {result['restore_growth']:.2f}")
    for r in result["touched"]:
        print(f"  {r['memory_mib']} MiB guest with {r['touched_mib']} MiB written: save {r['save_ms']:.2f} ms, "
              f"restore {r['restore_ms']:.2f} ms, file holds {r['allocated_bytes'] / MiB:.1f} MiB on disk")
    for r in result["restore_touched"]:
        verified = f"{r['verified_ms']:.0f} ms" if r["verified_ms"] is not None else "up front (no userfaultfd)"
        print(f"  {r['memory_mib']} MiB shell guest that wrote {r['touched_mib']} MiB: restore {r['restore_ms']:.2f} ms, "
              f"first output after start {r['first_output_ms']:.2f} ms, every page verified at {verified}")
    sys.stdout.flush()
    return 0
