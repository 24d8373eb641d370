"""Shared fixtures. KVM tests run on the real /dev/kvm; where it is missing they skip
with the reason, unless HVTUI_REQUIRE_KVM=1 (CI), where a skip would hide a failure."""
from __future__ import annotations

import os

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

