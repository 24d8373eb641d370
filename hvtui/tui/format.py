"""Small pure formatting helpers of the TUI: states in colour, sizes, rates, sparklines, bars."""
from __future__ import annotations

import re

from rich.text import Text

from hvtui.api import State

STATE_STYLES = {
    State.CREATED: "cyan",
    State.RUNNING: "bold green",
    State.PAUSED: "bold yellow",
    State.STOPPED: "dim",
    State.CRASHED: "bold red",
}
SPARK = "▁▂▃▄▅▆▇█"
BAR_EIGHTHS = " ▏▎▍▌▋▊▉█"
_ANSI = re.compile(rb"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def state_text(state: State) -> Text:
    return Text(state.value, style=STATE_STYLES.get(state, ""))


def status_text(guest) -> Text:
    """The state as the table shows it: running, paused, exited 3, crashed: reason, killed."""
    style = STATE_STYLES.get(guest.state, "")
    if guest.end is not None and guest.end.kind == "killed":
        style = "yellow"
    return Text(guest.status, style=style, no_wrap=True, overflow="ellipsis")


SILENT_SHOWN_S = 5.0      # a busy vCPU without exits this long is shown as such


def top_exit_text(guest) -> Text:
    """The busiest exit reason, or how long a busy vCPU has computed with no exit at all
    (early boot, a test kernel, CPL-0 code emulated on KVM-PVM): working, not hung."""
    if guest.silent_s >= SILENT_SHOWN_S:
        return Text(f"no exits {guest.silent_s:.0f}s", style="yellow")
    return Text(guest.top_exit_reason())


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def uptime(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def sparkline(values, width: int = 10) -> str:
    vals = list(values)[-width:]
    if not vals:
        return " " * width
    top = max(vals)
    if top <= 0:
        line = SPARK[0] * len(vals)
    else:
        line = "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in vals)
    return line.rjust(width)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of fraction (0..1) of width cells, in eighths."""
    eighths = max(0, min(width * 8, round(fraction * width * 8)))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BAR_EIGHTHS[part] if part else "")).ljust(width)


def console_tail(history: bytes | bytearray, lines: int, width: int = 200) -> list[str]:
    """The last lines of a console, escape sequences and control characters removed."""
    chunk = bytes(history[-(lines * (width + 2) + 256):])
    text = _ANSI.sub(b"", chunk).decode("utf-8", "replace")
    out = []
    for raw in text.split("\n"):
        line = raw.rstrip("\r").rsplit("\r", 1)[-1]     # a carriage return overwrites
        out.append(_CONTROL.sub("", line)[:width])
    return out[-lines:]
