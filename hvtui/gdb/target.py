"""The x86-64 target as gdb sees it, in every CPU mode (as QEMU reports it): the target
description (gdb's i386 core, sse and segments features, and the control registers in
a system feature), and each register read from and written to a parked vCPU's KVM state.

gdb numbers registers in description order: rax..r15 (0-15), rip, eflags, cs ss ds es fs
gs, st0-st7, the x87 control registers, xmm0-xmm15, mxcsr, fs_base, gs_base, cr0, cr2,
cr3, cr4, cr8, efer.
"""
from __future__ import annotations

from dataclasses import dataclass

from hvtui.errors import HvError

GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")
X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
CONTROL = ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")


@dataclass(frozen=True)
class Reg:
    name: str
    bits: int
    type: str
    feature: str
    group: str = ""


def _registers() -> list[Reg]:
    core, sse, seg, sys_ = "core", "sse", "segments", "sys"
    regs = [Reg(n, 64, "data_ptr" if n in ("rbp", "rsp") else "int64", core) for n in GPRS]
    regs += [Reg("rip", 64, "code_ptr", core), Reg("eflags", 32, "i386_eflags", core)]
    regs += [Reg(n, 32, "int32", core) for n in SEGMENTS]
    regs += [Reg(f"st{i}", 80, "i387_ext", core) for i in range(8)]
    regs += [Reg(n, 32, "int", core, "float") for n in X87_CONTROL]
    regs += [Reg(f"xmm{i}", 128, "vec128", sse) for i in range(16)]
    regs += [Reg("mxcsr", 32, "i386_mxcsr", sse, "vector")]
    regs += [Reg("fs_base", 64, "int", seg), Reg("gs_base", 64, "int", seg)]
    regs += [Reg(n, 64, "int", sys_, "system") for n in CONTROL]
    return regs


REGISTERS = _registers()
BY_NAME = {r.name: i for i, r in enumerate(REGISTERS)}

_EFLAGS = [("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
           ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19),
           ("VIP", 20), ("ID", 21)]
_MXCSR = [("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7),
          ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15)]
_FEATURES = {
    "core": ("org.gnu.gdb.i386.core", '<flags id="i386_eflags" size="4">'
             + "".join(f'<field name="{n}" start="{b}" end="{b}"/>' for n, b in _EFLAGS) + "</flags>"),
    "sse": ("org.gnu.gdb.i386.sse",
            "".join(f'<vector id="{i}" type="{t}" count="{c}"/>' for i, t, c in (
                ("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2), ("v16i8", "int8", 16),
                ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2)))
            + '<union id="vec128">' + "".join(f'<field name="{n}" type="{t}"/>' for n, t in (
                ("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"), ("v8_int16", "v8i16"),
                ("v4_int32", "v4i32"), ("v2_int64", "v2i64"), ("uint128", "uint128"))) + "</union>"
            + '<flags id="i386_mxcsr" size="4">'
            + "".join(f'<field name="{n}" start="{b}" end="{b}"/>' for n, b in _MXCSR) + "</flags>"),
    "segments": ("org.gnu.gdb.i386.segments", ""),
    "sys": ("org.hvtui.gdb.x86.sys", ""),
}


def target_xml() -> str:
    """The whole target description, one document (no xi:include)."""
    parts = ['<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">',
             "<target><architecture>i386:x86-64</architecture>"]
    for key, (name, types) in _FEATURES.items():
        parts.append(f'<feature name="{name}">{types}')
        for num, r in enumerate(REGISTERS):
            if r.feature == key:
                group = f' group="{r.group}"' if r.group else ""
                parts.append(f'<reg name="{r.name}" bitsize="{r.bits}" type="{r.type}" regnum="{num}"{group}/>')
        parts.append("</feature>")
    parts.append("</target>")
    return "".join(parts)


TARGET_XML = target_xml().encode()


class RegisterFile:
    """One parked vCPU's registers as gdb numbers them: read once, written back on flush."""

    def __init__(self, vcpu):
        self.vcpu = vcpu
        self.regs = vcpu.get_regs()
        self.sregs = vcpu.get_sregs()
        self.fpu = vcpu.get_fpu()
        self.dirty: set[str] = set()

    def get(self, num: int) -> bytes:
        r = REGISTERS[num]
        return self._value(r.name).to_bytes(r.bits // 8, "little")

    def _value(self, name: str) -> int:
        regs, sregs, fpu = self.regs, self.sregs, self.fpu
        if name in GPRS or name == "rip":
            return getattr(regs, name)
        if name == "eflags":
            return regs.rflags & 0xFFFFFFFF
        if name in SEGMENTS:
            return getattr(sregs, name).selector
        if name.startswith("st"):
            return int.from_bytes(bytes(fpu.fpr[int(name[2:])])[:10], "little")
        if name.startswith("xmm"):
            return int.from_bytes(bytes(fpu.xmm[int(name[3:])]), "little")
        if name in ("fs_base", "gs_base"):
            return getattr(sregs, name[:2]).base
        if name in CONTROL:
            return getattr(sregs, name)
        return {
            "fctrl": lambda: fpu.fcw, "fstat": lambda: fpu.fsw, "fop": lambda: fpu.last_opcode,
            "ftag": lambda: _full_tag(fpu.ftwx),
            "fioff": lambda: fpu.last_ip & 0xFFFFFFFF, "fiseg": lambda: (fpu.last_ip >> 32) & 0xFFFF,
            "fooff": lambda: fpu.last_dp & 0xFFFFFFFF, "foseg": lambda: (fpu.last_dp >> 32) & 0xFFFF,
            "mxcsr": lambda: fpu.mxcsr,
        }[name]()

    def all(self) -> bytes:
        return b"".join(self.get(i) for i in range(len(REGISTERS)))

    def set(self, num: int, data: bytes) -> None:
        """Change one register (flush() writes it); a selector cannot be changed here."""
        r = REGISTERS[num]
        if len(data) != r.bits // 8:
            raise ValueError(f"register {r.name} takes {r.bits // 8} bytes, got {len(data)}")
        value = int.from_bytes(data, "little")
        if value == self._value(r.name):
            return
        name, regs, sregs = r.name, self.regs, self.sregs
        if name in GPRS or name == "rip":
            setattr(regs, name, value)
            self.dirty.add("regs")
        elif name == "eflags":
            regs.rflags = (regs.rflags & ~0xFFFFFFFF) | value
            self.dirty.add("regs")
        elif name in SEGMENTS:
            raise HvError(f"changing the {name} selector would need its descriptor loaded: "
                          "hvtui does not do that from gdb")
        elif name in ("fs_base", "gs_base"):
            getattr(sregs, name[:2]).base = value
            self.dirty.add("sregs")
        elif name in CONTROL:
            setattr(sregs, name, value)
            self.dirty.add("sregs")
        else:
            self._set_fpu(name, value, data)
            self.dirty.add("fpu")

    def _set_fpu(self, name: str, value: int, data: bytes) -> None:
        fpu = self.fpu
        if name.startswith("st"):
            row = fpu.fpr[int(name[2:])]
            for k in range(10):
                row[k] = data[k]
        elif name.startswith("xmm"):
            row = fpu.xmm[int(name[3:])]
            for k in range(16):
                row[k] = data[k]
        elif name == "fctrl":
            fpu.fcw = value & 0xFFFF
        elif name == "fstat":
            fpu.fsw = value & 0xFFFF
        elif name == "ftag":
            fpu.ftwx = _abridged_tag(value)
        elif name == "fop":
            fpu.last_opcode = value & 0x7FF
        elif name == "mxcsr":
            fpu.mxcsr = value
        elif name in ("fioff", "fiseg"):
            fpu.last_ip = _merge(fpu.last_ip, name == "fiseg", value)
        else:
            fpu.last_dp = _merge(fpu.last_dp, name == "foseg", value)

    def flush(self) -> None:
        """Write back what changed (KVM may refuse inconsistent control registers)."""
        if "sregs" in self.dirty:
            self.vcpu.set_sregs(self.sregs)
        if "regs" in self.dirty:
            self.vcpu.set_regs(self.regs)
        if "fpu" in self.dirty:
            self.vcpu.set_fpu(self.fpu)
        self.dirty.clear()


def _full_tag(abridged: int) -> int:
    """FXSAVE's one-bit-per-register tag as the x87 two-bit tag word (valid or empty)."""
    return sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8))


def _abridged_tag(full: int) -> int:
    return sum((1 << i) for i in range(8) if (full >> (2 * i)) & 3 != 3)


def _merge(value: int, high: bool, part: int) -> int:
    if high:
        return (value & 0xFFFFFFFF) | ((part & 0xFFFF) << 32)
    return (value & ~0xFFFFFFFF) | (part & 0xFFFFFFFF)


def thread_description(vcpu) -> str:
    """What `info threads` shows beside each thread: vCPU, CPU mode and CPL."""
    sregs = vcpu.get_sregs()
    if not sregs.cr0 & 1:
        mode = "real mode"
    elif sregs.efer & 0x400 and sregs.cs.l:
        mode = "long mode"
    elif sregs.efer & 0x400:
        mode = "compatibility mode"
    else:
        mode = "protected mode" + (", paging" if sregs.cr0 & 0x80000000 else "")
    return f"vCPU {vcpu.index}, {mode}, CPL {sregs.cs.dpl}"
