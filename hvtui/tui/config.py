"""Settings of the TUI and the fleet it starts.

The config file lives at $XDG_CONFIG_HOME/hvtui/config.toml (~/.config/hvtui/config.toml):

    theme = "textual-dark"
    vcpu_nice = 19                         # guests' vCPU threads yield to the UI (0: off)
    console_nice = 10                      # the guest whose console is open, a little less
    snapshot_dir = "~/snapshots"           # default: $XDG_DATA_HOME/hvtui/snapshots
    [console]
    detach = "ctrl+right_square_bracket"   # Ctrl-]
    prefix = "ctrl+a"                      # prefix twice sends it to the guest
    columns = 80
    lines = 24
    [keymap]                               # binding id = key(s), as Textual's keymap
    pause = "space"
    [logs]
    max_mib = 64                           # cap of each console log; past it, it rotates
    keep = 2                               # rotated logs kept (NAME.log.1, NAME.log.2)

A fleet file names the guests `hvtui --fleet FILE.toml` starts:

    [[guest]]
    image = "counter"     # built-in name or path to an ELF64 file
    name = "c1"           # optional
    memory = 64           # MiB, optional
    vcpus = 1             # optional
    cmdline = "..."       # optional
    overcommit = true     # optional: start it even if the host cannot promise its RAM
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hvtui import logs, paths
from hvtui.api import Boot, GuestSpec, split_initrd
from hvtui.errors import ConfigError

DEFAULT_FLEET = (
    GuestSpec("counter", name="counter-1", memory_mib=32),
    GuestSpec("counter", name="counter-2", memory_mib=32),
    GuestSpec("shell", name="shell-1", memory_mib=32),
    GuestSpec("hello", name="hello-1", memory_mib=16),
)

GUEST_KEYS = {"image": str, "name": str, "memory": int, "vcpus": int, "cmdline": str, "append": str,
              "initrd": (str, list), "exit_code": str, "watchdog": (int, float), "overcommit": bool}


@dataclass
class Config:
    theme: str = "textual-dark"
    detach_key: str = "ctrl+right_square_bracket"
    prefix_key: str = "ctrl+a"
    columns: int = 80
    lines: int = 24
    keymap: dict[str, str] = field(default_factory=dict)
    vcpu_nice: int = 19             # niceness of guests' vCPU threads: the UI stays responsive
    console_nice: int = 10          # ... and of the guest whose console is open
    snapshot_dir: Path | None = None   # None: default_snapshot_dir()
    log_max_bytes: int = logs.DEFAULT_MAX_BYTES   # each console log, before it rotates
    log_keep: int = logs.DEFAULT_KEEP              # rotated console logs kept
    path: Path | None = None

    @property
    def snapshots(self) -> Path:
        """Where snapshots are saved by default and listed by the restore picker."""
        return Path(self.snapshot_dir).expanduser() if self.snapshot_dir else default_snapshot_dir()

    @property
    def screens(self) -> Path:
        """Where saved VGA screens go: beside the default snapshot directory."""
        return default_snapshot_dir().parent / "screens"


def config_path() -> Path:
    return paths.config_path()


def default_snapshot_dir() -> Path:
    return paths.snapshot_dir()


def _read_toml(path: Path, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}: is a directory") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except (OSError, ValueError) as e:      # TOMLDecodeError is a ValueError
        raise ConfigError(f"{what} {path}: {getattr(e, 'strerror', None) or e}") from None


def _expect(value, kind, where: str):
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{where}: expected {getattr(kind, '__name__', 'a number')}, got {str(value)[:60]!r}")
    return value


def load_config(path: str | Path | None = None) -> Config:
    """The user's settings; defaults when the file does not exist (unless named explicitly)."""
    explicit = path is not None
    path = Path(path) if path else config_path()
    if not explicit and not path.is_file():
        return Config()
    data = _read_toml(path, "config file")
    cfg = Config(path=path)
    cfg.theme = _expect(data.get("theme", cfg.theme), str, f"{path}: theme")
    console = _expect(data.get("console", {}), dict, f"{path}: [console]")
    cfg.detach_key = _expect(console.get("detach", cfg.detach_key), str, f"{path}: console.detach")
    cfg.prefix_key = _expect(console.get("prefix", cfg.prefix_key), str, f"{path}: console.prefix")
    cfg.columns = _expect(console.get("columns", cfg.columns), int, f"{path}: console.columns")
    cfg.lines = _expect(console.get("lines", cfg.lines), int, f"{path}: console.lines")
    if not (20 <= cfg.columns <= 500 and 5 <= cfg.lines <= 200):
        raise ConfigError(f"{path}: console size {cfg.columns}x{cfg.lines} is out of range")
    for key in ("vcpu_nice", "console_nice"):
        value = _expect(data.get(key, getattr(cfg, key)), int, f"{path}: {key}")
        if not 0 <= value <= 19:
            raise ConfigError(f"{path}: {key} must be between 0 and 19")
        setattr(cfg, key, value)
    if "snapshot_dir" in data:
        cfg.snapshot_dir = Path(_expect(data["snapshot_dir"], str, f"{path}: snapshot_dir")).expanduser()
    keymap = _expect(data.get("keymap", {}), dict, f"{path}: [keymap]")
    cfg.keymap = {str(k): _expect(v, str, f"{path}: keymap.{k}") for k, v in keymap.items()}
    log_table = _expect(data.get("logs", {}), dict, f"{path}: [logs]")
    max_mib = _expect(log_table.get("max_mib", cfg.log_max_bytes >> 20), int, f"{path}: logs.max_mib")
    keep = _expect(log_table.get("keep", cfg.log_keep), int, f"{path}: logs.keep")
    if not (1 <= max_mib <= 1 << 20 and 0 <= keep <= 100):
        raise ConfigError(f"{path}: logs.max_mib must be 1..1048576 and logs.keep 0..100")
    cfg.log_max_bytes, cfg.log_keep = max_mib << 20, keep
    return cfg


def load_fleet(path: str | Path) -> list[GuestSpec]:
    """The guests of a fleet file, checked before any is created."""
    path = Path(path)
    data = _read_toml(path, "fleet file")
    guests = data.get("guest")
    if not isinstance(guests, list) or not guests:
        raise ConfigError(f"fleet file {path}: no [[guest]] tables")
    specs, names = [], set()
    for i, g in enumerate(guests, 1):
        where = f"fleet file {path}: guest {i}"
        if not isinstance(g, dict):
            raise ConfigError(f"{where}: expected a [[guest]] table, got {str(g)[:40]!r}")
        unknown = set(g) - set(GUEST_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(GUEST_KEYS)})")
        for key, kind in GUEST_KEYS.items():
            if key in g:
                _expect(g[key], kind, f"{where}: {key}")
        if "image" not in g:
            raise ConfigError(f"{where}: no image")
        name = g.get("name", "")
        if name and name in names:
            raise ConfigError(f"{where}: the name {name!r} is used twice")
        names.add(name)
        if "cmdline" in g and "append" in g:
            raise ConfigError(f"{where}: append and cmdline are the same key; give one")
        initrd = g.get("initrd", [])
        initrd = split_initrd(initrd) if isinstance(initrd, str) else initrd
        if not all(isinstance(x, str) for x in initrd):
            raise ConfigError(f"{where}: initrd must be a string or a list of strings")
        if g.get("exit_code", "hvtui") not in ("hvtui", "qemu"):
            raise ConfigError(f"{where}: exit_code must be \"hvtui\" or \"qemu\"")
        watchdog = float(g.get("watchdog", 0.0))
        if not math.isfinite(watchdog) or watchdog < 0:
            raise ConfigError(f"{where}: watchdog must be a finite number of seconds from 0, not {watchdog}")
        for key in ("memory", "vcpus"):
            if key in g and g[key] < 1:
                raise ConfigError(f"{where}: {key} must be at least 1, not {g[key]}")
        specs.append(GuestSpec(image=g["image"], name=name, memory_mib=g.get("memory", 64),
                               vcpus=g.get("vcpus", 1), watchdog_s=watchdog, overcommit=g.get("overcommit", False),
                               boot=Boot(cmdline=g.get("append", g.get("cmdline")), initrd=tuple(initrd),
                                         exit_code=g.get("exit_code", "hvtui"))))
    return specs
