"""Where hvtui keeps things, by the XDG base directories: the daemon's socket and lock
($XDG_RUNTIME_DIR/hvtui/), console logs and the monitor's log ($XDG_STATE_HOME/hvtui/),
snapshots ($XDG_DATA_HOME/hvtui/snapshots) and the config ($XDG_CONFIG_HOME/hvtui/)."""
from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, *fallback: str) -> Path:
    return Path(os.environ.get(var) or os.path.join(os.path.expanduser("~"), *fallback))


def runtime_dir() -> Path:
    """The per-user folder of the daemon (0700): $XDG_RUNTIME_DIR/hvtui, else /tmp/hvtui-UID."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "hvtui" if base else Path(f"/tmp/hvtui-{os.getuid()}")


def socket_path() -> Path:
    return runtime_dir() / "monitor.sock"


def lock_path() -> Path:
    return runtime_dir() / "monitor.lock"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local", "state") / "hvtui"


def log_dir() -> Path:
    return state_dir() / "logs"


def monitor_log() -> Path:
    """The monitor's own log: what went wrong, with tracebacks (beside the console logs)."""
    return log_dir() / "hvtui.log"


def snapshot_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local", "share") / "hvtui" / "snapshots"


def config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "hvtui" / "config.toml"
