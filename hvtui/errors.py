"""The exception family of hvtui: every error the user can cause or meet is an HvError.

Each names what failed and, where there is one, what to do about it. The CLI prints
str(error) as one line and exits non-zero.
"""
import errno as _errno
import os


class HvError(Exception):
    """Base of every hvtui error."""


class KvmUnavailable(HvError):
    """/dev/kvm is missing, not permitted, or lacks something we rely on."""


class KvmError(HvError):
    """An ioctl (or other core operation) failed; names the operation and the errno."""

    def __init__(self, op: str, err: int, detail: str = ""):
        self.op = op
        self.errno = err
        name = _errno.errorcode.get(err, str(err))
        msg = f"{op} failed: {os.strerror(err)} ({name})"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class ImageError(HvError):
    """A guest image is missing, unknown or malformed."""


class ConfigError(HvError):
    """A machine configuration the host cannot honour (memory, vCPUs, names)."""


class GuestMemoryError(HvError):
    """A guest-physical address or length outside the guest's RAM."""


class DeviceError(HvError):
    """A device was driven into a state it cannot serve (a guest bug, not a host one)."""


class SnapshotError(HvError):
    """A snapshot file is corrupt, truncated, foreign or from another CPU."""


class StateError(HvError):
    """An action the guest's current lifecycle state does not allow."""
