"""Admission: may a new guest have the RAM it asks for? (issue 12)

A guest's RAM is mapped lazily, so the host pays for it only as the guest touches it:
36 GiB of guests fit on a 24 GiB host until they all touch their memory, and then the
kernel's OOM killer takes the monitor and every guest with it. So each machine's RAM is
a promise, and a new one is admitted only if the host can keep every promise at once:

    room = what the host has available (MemAvailable: free memory and reclaimable cache)
           - what is promised to the other guests of this process and not yet touched
    and, when the process runs in a cgroup with a memory limit (v2 memory.max or v1
    memory.limit_in_bytes, the tightest of its own and its ancestors'):
    room = min(room, limit - the cgroup's usage (less its inactive file cache)
                     - the same untouched promises)

A request over the room is refused with one line naming the figures, unless the user
asked for overcommit (`--overcommit`, `overcommit = true` in a fleet file).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable

from hvtui.errors import ConfigError

MiB = 1 << 20
CGROUP_ROOT = "/sys/fs/cgroup"
UNLIMITED = 1 << 62          # cgroup v1 reports "no limit" as a huge page-rounded number


@dataclass
class Promise:
    name: str
    ram: int
    resident: Callable[[], int]      # bytes of it the guest has touched so far

    def outstanding(self) -> int:
        try:
            touched = self.resident()
        except Exception:       # a machine half torn down: count the whole promise
            touched = 0
        return max(0, self.ram - touched)


_lock = threading.Lock()
_promises: dict[int, Promise] = {}


def promised() -> list[Promise]:
    with _lock:
        return list(_promises.values())


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _inactive_file(directory: str, key: str) -> int:
    try:
        with open(os.path.join(directory, "memory.stat")) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def cgroup_limit(proc_cgroup: str = "/proc/self/cgroup", root: str = CGROUP_ROOT) -> tuple[int, int, str] | None:
    """(limit, usage, where) of the tightest memory limit over this process's cgroup and
    its ancestors, usage less inactive file cache; None when there is none."""
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":                                   # cgroup v2
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):                # cgroup v1
            base, files = os.path.join(root, "memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                         "total_inactive_file")
        else:
            continue
        parts = [p for p in path.split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):
            directory = os.path.join(base, *parts[:depth])
            limit = _read_int(os.path.join(directory, files[0]))
            if limit is None or limit >= UNLIMITED:
                continue
            usage = _read_int(os.path.join(directory, files[1])) or 0
            usage = max(0, usage - _inactive_file(directory, files[2]))
            candidates.append((limit - usage, limit, usage, directory))
    if not candidates:
        return None
    _, limit, usage, directory = min(candidates)
    return limit, usage, directory


def admit(key: int, name: str, ram: int, resident: Callable[[], int], overcommit: bool = False) -> None:
    """Record the promise of ram bytes to guest name, or raise ConfigError when the host
    (or the cgroup) cannot keep it together with every other promise."""
    with _lock:
        others = [p for k, p in _promises.items() if k != key]
        owed = sum(p.outstanding() for p in others)
        if not overcommit:
            _check(name, ram, owed, len(others))
        _promises[key] = Promise(name, ram, resident)


def host_available() -> int:
    """Bytes the host can give without swapping: /proc/meminfo's MemAvailable, read here
    rather than through psutil.virtual_memory() (which reads the same line): importing
    psutil costs 6-12 ms, a quarter of QEMU's whole run of a tiny kernel, and every guest
    start asks this. psutil only for a kernel without the line (before 3.14)."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import psutil
    return psutil.virtual_memory().available


def _check(name: str, ram: int, owed: int, n_others: int) -> None:
    available = host_available()
    promised_text = f", {owed // MiB} MiB already promised to {n_others} other guest(s)" if owed else ""
    hint = "; give it less memory, end other guests, or pass --overcommit to start it anyway"
    if ram > available - owed:
        raise ConfigError(f"{ram // MiB} MiB of guest memory is more than the host has free "
                          f"({available // MiB} MiB available{promised_text}){hint}")
    cg = cgroup_limit()
    if cg is not None:
        limit, usage, where = cg
        if ram > limit - usage - owed:
            raise ConfigError(f"{ram // MiB} MiB of guest memory is more than the memory cgroup allows "
                              f"({limit // MiB} MiB limit in {where}, {usage // MiB} MiB in use"
                              f"{promised_text}){hint}")


def release(key: int) -> None:
    with _lock:
        _promises.pop(key, None)
