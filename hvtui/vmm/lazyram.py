"""A restored machine's RAM served lazily from its snapshot file (the C side is
core/lazyram.c): each written page is read, checked against its CRC32C and mapped on
first touch, the rest prefetched in the background; holes are zero pages.

This module starts it for a machine, watches it (one thread per restored machine, asleep
on an eventfd until the prefetch is done or a page fails) and turns a failed page into
the machine's end: `crashed`, with the gpa named. A vCPU that was running stops in C
before it can read the page (HV_EXIT_BAD_RAM); the watcher covers a paused or created
guest. available() says whether this process may use a userfaultfd at all (root, or
access to /dev/userfaultfd); without one the caller verifies every page up front.
"""
from __future__ import annotations

import os
import threading

from hvtui._core import ffi, lib
from hvtui.errors import KvmError

_available: bool | None = None
_REASONS = {lib.HV_LAZY_BAD_CHECKSUM: "fails its checksum",
            lib.HV_LAZY_BAD_SHORT: "is missing from the file (truncated?)"}
FORCE_EAGER_ENV = "HVTUI_SNAPSHOT_EAGER"   # "1": restore as a user without a userfaultfd does
NO_PREFETCH_ENV = "HVTUI_TEST_LAZY_NO_PREFETCH"   # tests: "1" serves faults only, no prefetch


def available() -> bool:
    """Whether this process can serve guest RAM through a userfaultfd (asked once)."""
    global _available
    if os.environ.get(FORCE_EAGER_ENV) == "1":
        return False
    if _available is None:
        _available = lib.hv_lazy_available() > 0
    return _available


class LazyRam:
    """The lazy RAM of one machine: started over its mapped (anonymous) slots."""

    def __init__(self, vm, snap, on_failure):
        self._vm = vm
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._closed = False
        regions = ffi.new("struct hv_lazy_region[]", len(snap.regions))
        keep = []
        for i, r in enumerate(snap.regions):
            runs = ffi.from_buffer("uint64_t[]", r.runs)
            keep.append(runs)
            regions[i].slot, regions[i].file_off = r.slot, snap.mem_off + r.offset
            regions[i].runs, regions[i].nruns = runs, len(r.runs) // 2
        sums = ffi.from_buffer("uint32_t[]", snap.sums)
        rc = lib.hv_vm_restore_lazy(vm.ptr, snap.fd, regions, len(snap.regions), sums, len(snap.sums),
                                    lib.HV_LAZY_NO_PREFETCH if os.environ.get(NO_PREFETCH_ENV) == "1" else 0)
        if rc < 0:
            raise KvmError(ffi.string(lib.hv_last_op()).decode(), -rc, snap.path)
        self._efd = os.dup(lib.hv_lazy_notify_fd(vm.ptr))
        self._thread = threading.Thread(target=self._watch, name="hvtui-lazy-ram", daemon=True)
        self._thread.start()

    def stats(self) -> dict | None:
        """The C side's counters (None once closed): state, pages, timings."""
        with self._lock:
            if self._closed:
                return None
            st = ffi.new("struct hv_lazy_stats *")
            if lib.hv_lazy_get_stats(self._vm.ptr, st) < 0:
                return None
            return {"state": {lib.HV_LAZY_RUNNING: "running", lib.HV_LAZY_DONE: "done",
                              lib.HV_LAZY_FAILED: "failed"}.get(st.state, "?"),
                    "pages_total": st.pages_total, "prefetched": st.prefetched,
                    "fetched_by_fault": st.fetched_by_fault, "faults": st.faults,
                    "zero_faults": st.zero_faults, "bad_gpa": st.bad_gpa, "bad_reason": st.bad_reason,
                    "vcpus_stuck": bool(st.vcpus_stuck),
                    "t_start_ns": st.t_start_ns, "t_done_ns": st.t_done_ns}

    def failure(self) -> str | None:
        """One line naming the page that failed, or None."""
        st = self.stats()
        if st is None or st["state"] != "failed":
            return None
        return (f"snapshot page at gpa {st['bad_gpa']:#x} {_REASONS.get(st['bad_reason'], 'is bad')}; "
                "the guest was stopped before reading it")

    def _watch(self) -> None:
        try:
            while True:
                os.read(self._efd, 8)
                st = self.stats()
                if st is None or st["state"] == "done":
                    return
                if st["state"] == "failed":
                    self._on_failure(self.failure())
                    return
        except OSError:
            return
        finally:
            os.close(self._efd)

    def close(self) -> None:
        """Before the VM is destroyed: no more calls into it (the C side stops with it)."""
        with self._lock:
            self._closed = True
