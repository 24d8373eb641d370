"""Log files the monitor writes: guests' console logs, capped with rotation, and the
monitor's own log of what went wrong (hvtui.log).

A guest decides how much it prints, so its console log must not decide how much disk
the host gives it: each console log is capped at max_bytes (64 MiB unless configured);
when a write would pass the cap, NAME.log becomes NAME.log.1 (NAME.log.1 becomes
NAME.log.2, and so on, `keep` old files kept) and a new NAME.log starts. A flooding
guest thus holds at most (keep + 1) * max_bytes of disk per console.
"""
from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import re
from pathlib import Path

from hvtui.api import SERIAL

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_KEEP = 2
MONITOR_LOG = "hvtui.log"


class RotatingLog:
    """An append-only binary log capped at max_bytes, rotated to path.1 .. path.keep."""

    def __init__(self, path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP,
                 append: bool = False):
        if max_bytes < 1 or keep < 0:
            raise ValueError("a log needs max_bytes >= 1 and keep >= 0")
        self.path = Path(path)
        self.max_bytes, self.keep = max_bytes, keep
        self.rotations = 0
        self.dropped = 0            # bytes of one write larger than the cap that were not kept
        self._file = open(self.path, "ab" if append else "wb")
        self.size = self._file.tell()

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, data: bytes) -> None:
        if self._file.closed or not data:
            return
        if len(data) > self.max_bytes:          # keep the newest part of a giant write
            self.dropped += len(data) - self.max_bytes
            data = data[-self.max_bytes:]
        if self.size + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self.size += len(data)

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        if self.keep:
            for i in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "wb")
        self.size = 0
        self.rotations += 1

    def close(self) -> None:
        self._file.close()


def open_monitor_log(log_dir: str | os.PathLike) -> logging.Handler | None:
    """Send the "hvtui" logger to LOG_DIR/hvtui.log (1 MiB, 2 old files kept): what the TUI
    records when something fails unexpectedly (the file is made by the first record). The
    handler, for close_monitor_log; None when the file cannot be opened (the notification
    still says what happened)."""
    try:
        handler = logging.handlers.RotatingFileHandler(Path(log_dir) / MONITOR_LOG, maxBytes=1 << 20,
                                                       backupCount=2, encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def close_monitor_log(handler: logging.Handler | None) -> None:
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


log = logging.getLogger("hvtui")
log.propagate = False


# ---- console logs: one file per run ----
def next_run(log_dir: Path, name: str) -> int:
    """1 + the highest run of name with a log in log_dir (runs are never overwritten)."""
    pattern = re.compile(re.escape(name) + r"\.(\d+)\.log$")
    runs = [int(m.group(1)) for p in log_dir.glob(f"{glob_escape(name)}.*.log") if (m := pattern.match(p.name))]
    return max(runs, default=0) + 1


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def run_log(log_dir: Path, name: str, run: int, console: str = SERIAL) -> Path:
    """NAME.RUN.log for the serial console, NAME.RUN.CONSOLE.log for the others."""
    return log_dir / (f"{name}.{run}.log" if console == SERIAL else f"{name}.{run}.{console}.log")


def point_latest(log_dir: Path, name: str, target: Path, console: str = SERIAL) -> None:
    """NAME.log (NAME.CONSOLE.log) -> this run's file, replaced atomically."""
    link = log_dir / (f"{name}.log" if console == SERIAL else f"{name}.{console}.log")
    tmp = log_dir / f".{link.name}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        tmp.unlink()
    try:
        os.symlink(target.name, tmp)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
