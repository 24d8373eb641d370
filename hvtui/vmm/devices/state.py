"""Checks for a device's saved state, shared by every restore(): the saved value must be a
dict with exactly the keys the device saves, and each number an int in its range. A
failure is a SnapshotError naming the device and the field."""
from __future__ import annotations

from hvtui.errors import SnapshotError


def check_keys(state, keys: frozenset | set, what: str) -> dict:
    """state itself, once it is a dict with exactly these keys."""
    if not isinstance(state, dict):
        raise SnapshotError(f"{what} state must be a dict, not {type(state).__name__}")
    missing, extra = keys - state.keys(), state.keys() - keys
    if missing or extra:
        raise SnapshotError(f"{what} state: missing {sorted(missing)}, unexpected {sorted(map(str, extra))}")
    return state
