"""Shared fixtures. KVM tests run on the real /dev/kvm; where it is missing they skip
with the reason, unless HVTUI_REQUIRE_KVM=1 (CI), where a skip would hide a failure."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import pytest
import pytest_asyncio


def _kvm_problem() -> str | None:
    try:
        from hvtui.vmm.kvm import Kvm
        Kvm.get()
    except Exception as e:   # no /dev/kvm, no permission, a missing capability
        return str(e)
    return None


KVM_PROBLEM = _kvm_problem()


@pytest.fixture(autouse=True)
def _kvm_gate(request):
    """A test marked kvm skips without KVM, or fails when HVTUI_REQUIRE_KVM=1."""
    if KVM_PROBLEM is None or request.node.get_closest_marker("kvm") is None:
        return
    if os.environ.get("HVTUI_REQUIRE_KVM") == "1":
        pytest.fail(f"HVTUI_REQUIRE_KVM=1 but KVM is unusable: {KVM_PROBLEM}")
    pytest.skip(f"needs KVM: {KVM_PROBLEM}")


@pytest_asyncio.fixture
async def host(tmp_path):
    from hvtui.host import Host
    async with Host(log_dir=tmp_path / "logs", sample_interval=0.2) as h:
        yield h


@pytest.fixture(autouse=True)
def _private_xdg(tmp_path, monkeypatch):
    """Every test gets its own XDG runtime, state and data folders (a short runtime path:
    a Unix socket's path is limited to 108 bytes), so that a monitor a test starts is its
    own. A test that leaves a monitor running fails, and the monitor is stopped."""
    runtime = tempfile.mkdtemp(prefix="hv", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    yield runtime
    left = stop_monitor_in(runtime)
    shutil.rmtree(runtime, ignore_errors=True)
    if left:
        pytest.fail(f"the test left a monitor running (pid {left}); it was stopped")


def stop_monitor_in(runtime: str) -> int | None:
    """The pid of a monitor still holding the lock under runtime (then killed), or None."""
    import fcntl
    lock = os.path.join(runtime, "hvtui", "monitor.lock")
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None                       # nobody holds it: no monitor
        except OSError:
            pass
        pid = int(os.pread(fd, 32, 0).split()[0])
    finally:
        os.close(fd)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return pid
            time.sleep(0.05)
    return pid


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a 1 MiB tmpfs of its own, for a disk that fills up (needs root and
    mount; skips with the reason otherwise). Unmounted afterwards."""
    import subprocess
    where = tmp_path / "small-disk"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {r.stderr.decode().strip() or r.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)

