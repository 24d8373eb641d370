"""The schema of a snapshot's state section: every type, range, size and depth checked
before anything is built from it (DESIGN §6, §12: saved state is its own checked value).

A snapshot file's checksums only prove that the file is what its writer wrote; whoever
wrote it (an editor, a fuzzer, another program) may have recomputed them. So the state
is held to this schema the way the header is held to its layout: a value of the wrong
type, out of range, too long or nested too deep is refused with one line naming where.

Why a small explicit validator and not a schema library (jsonschema, pydantic): the
sizes that matter are only known at run time (each kvm struct's size from cffi, the C
UART and i8042 state sizes, the vCPU blobs Vcpu lists), the state holds bytes decoded
from {"$b64": ...}, which JSON Schema cannot type, and the checks must not recurse
without bound on hostile input. A hundred lines here do that, with messages in the
project's voice and no new dependency.

What the schema covers: the envelope (format, created, kvm, CPUID fingerprint), the
machine configuration (derived from MachineConfig's fields, with ranges for the known
ones), every vCPU's and the VM's raw kvm structs (exact sizes), and the devices map
(keys, and each device's state as bounded plain data). Each device's restore() then
checks its own state's meaning as strictly as its live register writes.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing

MAX_VCPUS = 1024                 # layout.MAX_VCPUS_LAYOUT; also bounds the vCPU list
MAX_MSRS = 4096
MAX_DEVICES = 64
MAX_TEXT = 4096                  # paths, names, kernel strings
MAX_DEVICE_BYTES = 1 << 20       # one device state's bytes or string
MAX_DEVICE_ITEMS = 4096          # items in one device state's containers, all together
MAX_DEVICE_DEPTH = 4             # nesting inside one device state
MAX_XSAVE = 64 * 1024
# The largest state section any machine this hvtui can build writes (1024 vCPUs with a
# large XSAVE area and their MSRs, in base64, plus the devices): a header that claims
# more is refused before a byte of the section is read.
MAX_STATE_BYTES = (1 << 20) + MAX_VCPUS * (32 << 10)
DEVICE_KEY = re.compile(r"(port|mmio):0x[0-9a-f]{1,16}\Z")


class SchemaError(ValueError):
    """The state section does not fit the schema; the message says where and why."""


def _fail(where: str, what: str):
    raise SchemaError(f"{where}: {what}")


def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


# ---- the checks, each check(value, where) ----
def integer(lo: int, hi: int):
    def check(v, where):
        if type(v) is not int:
            _fail(where, f"expected an integer, got {_type_name(v)}")
        if not lo <= v <= hi:
            _fail(where, f"{v} is outside {lo}..{hi}")
    return check


def number(lo: float, hi: float):
    def check(v, where):
        if type(v) not in (int, float):
            _fail(where, f"expected a number, got {_type_name(v)}")
        if not math.isfinite(v) or not lo <= v <= hi:
            _fail(where, f"{v!r} is outside {lo:g}..{hi:g}")
    return check


def text(max_len: int = MAX_TEXT, pattern: re.Pattern | None = None, what: str = ""):
    def check(v, where):
        if type(v) is not str:
            _fail(where, f"expected a string, got {_type_name(v)}")
        if len(v) > max_len:
            _fail(where, f"a string of {len(v)} characters (at most {max_len})")
        if pattern is not None and not pattern.match(v):
            _fail(where, f"{v[:40]!r} is not {what or 'well-formed'}")
    return check


def boolean(v, where):
    if type(v) is not bool:
        _fail(where, f"expected true or false, got {_type_name(v)}")


def blob(size: int | None = None, max_size: int | None = None):
    def check(v, where):
        if type(v) is not bytes:
            _fail(where, f"expected bytes ({{\"$b64\": ...}}), got {_type_name(v)}")
        if size is not None and len(v) != size:
            _fail(where, f"{len(v)} bytes, expected {size}")
        if max_size is not None and len(v) > max_size:
            _fail(where, f"{len(v)} bytes, at most {max_size}")
    return check


def one_of(*values):
    def check(v, where):
        if type(v) is not str or v not in values:
            _fail(where, f"{str(v)[:40]!r} is not one of {', '.join(values)}")
    return check


def optional(inner):
    def check(v, where):
        if v is not None:
            inner(v, where)
    return check


def array(item, min_len: int = 0, max_len: int = MAX_TEXT):
    def check(v, where):
        if type(v) is not list:
            _fail(where, f"expected a list, got {_type_name(v)}")
        if not min_len <= len(v) <= max_len:
            _fail(where, f"a list of {len(v)} items (expected {min_len}..{max_len})")
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")
    return check


def record(required: dict, optional_fields: dict | None = None):
    """A dict with exactly these keys (the optional ones may be missing)."""
    optional_fields = optional_fields or {}

    def check(v, where):
        if type(v) is not dict:
            _fail(where, f"expected an object, got {_type_name(v)}")
        missing = [k for k in required if k not in v]
        if missing:
            _fail(where, f"missing {', '.join(missing)}")
        unknown = [str(k) for k in v if k not in required and k not in optional_fields]
        if unknown:
            _fail(where, f"unexpected {', '.join(sorted(unknown))[:80]}")
        for k, x in v.items():
            (required.get(k) or optional_fields[k])(x, f"{where}.{k}")
    return check


def plain_data(v, where, depth: int = MAX_DEVICE_DEPTH, budget: list | None = None):
    """Bounded plain data (a device's own state, which its restore() checks in detail):
    dicts with string keys, lists, strings and bytes up to MAX_DEVICE_BYTES, integers,
    finite numbers, booleans, null; at most MAX_DEVICE_DEPTH deep and MAX_DEVICE_ITEMS
    items in all."""
    budget = [MAX_DEVICE_ITEMS] if budget is None else budget
    if v is None or type(v) in (bool, int):
        return
    if type(v) is float:
        if not math.isfinite(v):
            _fail(where, f"{v!r} is not a finite number")
        return
    if type(v) in (str, bytes):
        if len(v) > MAX_DEVICE_BYTES:
            _fail(where, f"{len(v)} characters or bytes (at most {MAX_DEVICE_BYTES})")
        return
    if type(v) not in (dict, list):
        _fail(where, f"unexpected {_type_name(v)}")
    if depth <= 0:
        _fail(where, f"nested more than {MAX_DEVICE_DEPTH} deep")
    budget[0] -= len(v)
    if budget[0] < 0:
        _fail(where, f"more than {MAX_DEVICE_ITEMS} items")
    items = v.items() if type(v) is dict else enumerate(v)
    for k, x in items:
        if type(k) is not int and type(k) is not str:
            _fail(where, "a key that is not a string")
        plain_data(x, f"{where}.{k}" if type(k) is str else f"{where}[{k}]", depth - 1, budget)


# ---- the machine configuration ----
def _config_rules() -> dict:
    from hvtui.vmm import layout
    from hvtui.vmm.machine import EXIT_CODE_STYLES, MIN_MEMORY_MIB
    max_mib = (layout.MAX_MAPPED_GIB - 2) << 10
    return {
        "name": text(64, re.compile(r"[^/\0]+\Z"), "a guest name (1-64 characters, no '/')"),
        "image": text(),
        "memory_mib": integer(MIN_MEMORY_MIB, max_mib),
        "vcpus": integer(1, MAX_VCPUS),
        "cmdline": text(layout.CMDLINE_MAX),
        "watchdog_s": number(0, 1e9),
        "initrd": array(text(), 0, 256),
        "exit_code_style": one_of(*EXIT_CODE_STYLES),
        "disk": optional(text()),
        "disk_readonly": boolean,
    }


def _from_hint(hint) -> typing.Callable:
    """A check for a MachineConfig field this module has no rule for (added later)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is str:
        return text()
    if hint is bool:
        return boolean
    if hint is int:
        return integer(-(1 << 63), (1 << 63) - 1)
    if hint is float:
        return number(-1e18, 1e18)
    if origin is list and args:
        return array(_from_hint(args[0]), 0, 256)
    if type(None) in args and len(args) == 2:
        return optional(_from_hint(next(a for a in args if a is not type(None))))
    return lambda v, where: plain_data(v, where, 2)


def config_schema():
    from hvtui.vmm.machine import MachineConfig
    rules, hints = _config_rules(), typing.get_type_hints(MachineConfig)
    required, optional_fields = {}, {}
    for f in dataclasses.fields(MachineConfig):
        check = rules.get(f.name) or _from_hint(hints[f.name])
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        (required if no_default else optional_fields)[f.name] = check
    return record(required, optional_fields)


# ---- vCPUs, the VM, the devices ----
def vcpu_schema():
    from hvtui._core import ffi
    from hvtui.vmm.kvm import Vcpu
    fields = {name: blob(ffi.sizeof(ctype.rstrip(" *"))) for name, ctype, _, _ in Vcpu._BLOBS}
    fields["events"] = blob(ffi.sizeof("struct kvm_vcpu_events"))
    fields["msrs"] = array(array(integer(0, (1 << 64) - 1), 2, 2), 0, MAX_MSRS)
    fields["mp_state"] = integer(0, 0xFFFFFFFF)
    return record(fields, {"xsave": blob(max_size=MAX_XSAVE)})


def vm_schema():
    from hvtui._core import ffi, lib
    return record({
        "irqchip": array(blob(ffi.sizeof("struct kvm_irqchip")), 3, 3),
        "pit2": optional(blob(ffi.sizeof("struct kvm_pit_state2"))),    # null: a tiny guest, no PIT
        "clock": blob(ffi.sizeof("struct kvm_clock_data")),
        "uart": blob(lib.hv_uart_state_size()),
        "i8042": blob(lib.hv_i8042_state_size()),
    })


def devices_check(v, where):
    if type(v) is not dict:
        _fail(where, f"expected an object, got {_type_name(v)}")
    if len(v) > MAX_DEVICES:
        _fail(where, f"{len(v)} devices (at most {MAX_DEVICES})")
    for key, state in v.items():
        if not DEVICE_KEY.match(key):
            _fail(where, f"{key[:40]!r} is not a device address (port:0x.. or mmio:0x..)")
        if type(state) is not dict:
            _fail(f"{where}.{key}", f"expected an object, got {_type_name(state)}")
        plain_data(state, f"{where}.{key}")


def check_state(state, format_version: int) -> None:
    """Raise SchemaError unless the decoded state section fits the schema."""
    record({
        "format": integer(format_version, format_version),
        "created": number(0, 1e11),
        "kvm": text(16),
        "cpuid_fingerprint": text(128, re.compile(r"[0-9a-f]+\Z"), "a hex digest"),
        "config": config_schema(),
        "machine": record({"vcpus": array(vcpu_schema(), 1, MAX_VCPUS), "vm": vm_schema(),
                           "devices": devices_check}),
    })(state, "state")
    if len(state["machine"]["vcpus"]) != state["config"]["vcpus"]:
        _fail("state.machine.vcpus", f"{len(state['machine']['vcpus'])} vCPUs saved, "
              f"the configuration has {state['config']['vcpus']}")
