"""`hvtui bench exits` and `hvtui bench startup` end to end on real KVM, small: each runs
its guests to their end and reports every row, its reference and its floors. Their
figures are reported, never asserted (speed is the benchmarks' business, not the tests')."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kvm


def bench(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "hvtui", "bench", *args, "--json"], capture_output=True, timeout=180)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout)


def test_bench_exits_reports_every_path_and_the_python_floor():
    out = bench("exits", "--runs", "2", "--count", "3000")
    assert out["kvm"] in ("pvm", "hw") and out["runs"] == 2 and out["exits_per_run"] == 3000
    for path in ("raw", "c", "python", "python_floor"):
        runs = out[f"{path}_runs"]
        assert len(runs) == 2 and all(rate > 0 for rate in runs), (path, runs)
    for ratio in ("ratio", "python_ratio", "python_floor_ratio"):
        assert out[ratio] > 0


def test_bench_startup_reports_hvtui_qemu_and_the_python_floors():
    out = bench("startup", "--runs", "1")
    assert out["kvm"] in ("pvm", "hw") and out["runs"] == 1
    assert 0 < out["hvtui_first_line_ms"] <= out["hvtui_ms"]
    assert set(out["floor_ms"]) == {"python", "asyncio", "machine_layer"}
    assert all(ms > 0 for ms in out["floor_ms"].values())
    if shutil.which("qemu-system-x86_64"):
        assert 0 < out["qemu_first_line_ms"] <= out["qemu_ms"]
        assert out["ratio"] > 0 and set(out["floor_ratio"]) == set(out["floor_ms"])
    else:                       # no reference in this run: said, not invented
        assert out["qemu_ms"] is None and out["ratio"] is None and out["floor_ratio"] is None
