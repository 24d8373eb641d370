"""gdb's `monitor` commands (qRcmd) for a guest: its state, every vCPU's registers, and
what this host's KVM can do for a debugger. Each returns the text gdb prints."""
from __future__ import annotations

from hvtui.errors import HvError
from hvtui.gdb.target import thread_description
from hvtui.vmm.exits import REGISTER_NAMES, SREG_NAMES, register_dump

HELP = """hvtui monitor commands:
  state       the guest: lifecycle state, who holds its vCPUs, boot protocol, memory
  registers   general and control registers of every vCPU (also: regs)
  host        what this host's KVM can do for a debugger, and the last thing it refused
  help        this list
"""


def run(session, line: str) -> str:
    words = line.split()
    command = words[0] if words else "help"
    if command in ("help", "?"):
        return HELP
    if command == "state":
        return state(session)
    if command in ("registers", "regs"):
        return registers(session)
    if command in ("host", "caps", "why"):
        return host(session)
    return f"unknown monitor command {command!r}\n" + HELP


def state(session) -> str:
    m = session.machine
    held = "stopped by the debugger" if m.debug_stopped else "running"
    lines = [f"guest {m.name}: {m.state.value}" + (f" ({held})" if m.state.live else f" ({m.stop_reason})"),
             f"image {m.config.image} ({m.boot_protocol}), {m.config.memory_mib} MiB, {len(m.vcpus)} vCPU(s)"]
    if m.vm is not None:
        lines.append(f"console: {m.console_offset()} bytes sent by the guest")
    event = session.debug.take_event()
    if event is not None and m.debug_stopped:
        lines.append(f"last stop: vCPU {event.vcpu}, {event.reason}" + (f" at {event.addr:#x}" if event.addr else ""))
    for bp in session.debug.breakpoints.values():
        where = f"debug register {bp.slot}" if bp.slot is not None else "int3"
        lines.append(f"{bp.kind} breakpoint at {bp.addr:#x} ({bp.length} bytes, {where})")
    return "\n".join(lines) + "\n"


def registers(session) -> str:
    m = session.machine
    if not session.can_touch_vcpus():
        return f"{m.name} is running: stop it first (Ctrl-C)\n"
    out = []
    for vcpu in m.vcpus:
        try:
            regs = register_dump(vcpu)
            out.append(thread_description(vcpu))
        except HvError as e:
            out.append(f"vCPU {vcpu.index}: {e}")
            continue
        names = [n for n in REGISTER_NAMES + SREG_NAMES if n in regs]
        for i in range(0, len(names), 3):
            out.append("  " + "  ".join(f"{n:>6}={regs[n]:#018x}" for n in names[i:i + 3]))
        out.append(f"      cs={regs['cs']:#06x}      ss={regs['ss']:#06x}")
    return "\n".join(out) + "\n"


def host(session) -> str:
    debug = session.debug
    lines = debug.caps.lines()
    lines.append("last refusal: " + (debug.last_refusal or "none"))
    return "\n".join(lines) + "\n"
