"""Checks for a device's saved state (DESIGN §12: restore() checks what it loads as strictly
as the live path checks a register write). Each raises SnapshotError naming the device,
the field and what was wrong; nothing of the device changes until all of it passed."""
from __future__ import annotations

from hvtui.errors import SnapshotError


def fields(state, keys: tuple[str, ...], what: str) -> dict:
    """state must be a dict with exactly these keys."""
    if not isinstance(state, dict):
        raise SnapshotError(f"{what} state must be an object, not {type(state).__name__}")
    missing = [k for k in keys if k not in state]
    extra = sorted(str(k) for k in state if k not in keys)
    if missing or extra:
        raise SnapshotError(f"{what} state: missing {missing}, unexpected {extra[:8]}")
    return state


def integer(state: dict, key: str, lo: int, hi: int, what: str) -> int:
    v = state[key]
    if type(v) is not int or not lo <= v <= hi:
        raise SnapshotError(f"{what} state: {key} must be an integer {lo}..{hi:#x}, not {str(v)[:40]!r}")
    return v


def boolean(state: dict, key: str, what: str) -> bool:
    v = state[key]
    if type(v) is not bool:
        raise SnapshotError(f"{what} state: {key} must be true or false, not {str(v)[:40]!r}")
    return v


def hex_bytes(state: dict, key: str, max_len: int, what: str, exact: bool = False) -> bytes:
    v = state[key]
    try:
        data = bytes.fromhex(v) if isinstance(v, str) and len(v) <= 2 * max_len else None
    except ValueError:
        data = None
    if data is None or (exact and len(data) != max_len):
        size = f"exactly {max_len}" if exact else f"at most {max_len}"
        raise SnapshotError(f"{what} state: {key} must be {size} bytes in hex")
    return data
