"""Boot protocols: how a kernel file becomes a running guest.

One module per protocol, each behind the same small interface:
- `accepts(image: bytes) -> bool` recognises the file by its content;
- `load(ctx: BootContext) -> Boot` checks the whole file and everything it asks for
  before the first byte is written (a bad file raises ImageError with one line and leaves
  guest memory as it was), then places the kernel and its boot data in guest memory and
  returns where and how the vCPUs start.

The protocols are tried in `PROTOCOLS` order: a Multiboot header is looked for first (a
Multiboot kernel may also be an ELF), then the Linux setup header, then an ELF with the
PVH entry note, then the tiny guests' own ELF64 ABI (hvelf).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from hvtui.errors import ImageError
from hvtui.vmm.files import file_kind
from hvtui.vmm.memory import GuestMemory

MAX_IMAGE_BYTES = 1 << 30        # a kernel or module file larger than this is refused unread


class Module:
    """A file handed to the kernel: an initrd (Linux, PVH) or a Multiboot module. It is
    opened (and checked) when made, and its bytes go from the file straight into guest
    RAM (copy_to), never through a copy in the monitor's memory: a 500 MiB initramfs costs
    the monitor the guest RAM it fills, not that again in Python objects. close() after
    loading."""

    CHUNK = 4 << 20

    def __init__(self, path: str, string: str):
        self.path = path
        self.string = string        # the module's command line as the kernel sees it
        self._fd, self.size = open_regular(path, "module or initrd")

    def copy_to(self, memory: GuestMemory, gpa: int) -> None:
        """The file's size bytes (as it was when opened) into guest RAM at gpa, bounds-checked
        as one range first; a file that shrank meanwhile is one ImageError line."""
        if self.size == 0:
            return
        view = memory.view(gpa, self.size)
        done = 0
        try:
            while done < self.size:
                n = os.preadv(self._fd, [view[done:done + self.CHUNK]], done)
                if n == 0:
                    raise ImageError(f"{self.path}: ends at byte {done}, not {self.size}: it changed while "
                                     f"hvtui was loading it")
                done += n
        except OSError as e:
            raise ImageError(f"{self.path}: {e.strerror}") from None
        finally:
            view.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class BootContext:
    """What a protocol needs to load a kernel: the file, what the user gave it, and the
    machine it lands in (RAM below the MMIO hole is [0, low_end), more from 4 GiB)."""
    kernel_path: str
    image: bytes
    cmdline: str
    modules: list[Module]
    memory: GuestMemory
    ram_size: int
    low_end: int
    high_size: int
    vcpus: int
    tsc_khz: int = 0
    virtio: list[tuple[int, int]] = field(default_factory=list)   # (MMIO base, IRQ) of live devices


@dataclass
class Entry:
    """The state one vCPU starts in: mode is "long64" (paging on, identity map) or
    "protected32" (flat segments, paging off); regs names general registers to set."""
    mode: str
    rip: int
    regs: dict[str, int] = field(default_factory=dict)


@dataclass
class Boot:
    protocol: str
    entries: list[Entry]     # one per vCPU the monitor starts; the rest wait for INIT/SIPI
    pc: bool = True          # the PC platform: firmware tables, APs wait for INIT/SIPI
    load_start: int = 0
    load_end: int = 0


def protocols():
    from hvtui.vmm.boot import bzimage, hvelf, multiboot1, multiboot2, pvh
    return [multiboot2, multiboot1, bzimage, pvh, hvelf]


def file_size(path: str, what: str = "kernel") -> int:
    """The size of a regular file, or one ImageError line naming what it is instead (a
    directory, a device, a FIFO: each would be read forever or block)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror}") from None
    return _checked_size(path, st, what)


def _checked_size(path: str, st: os.stat_result, what: str) -> int:
    kind = file_kind(st.st_mode)
    if kind is not None:
        raise ImageError(f"{path}: is {kind}, not a {what} file")
    if st.st_size > MAX_IMAGE_BYTES:
        raise ImageError(f"{path}: {st.st_size >> 20} MiB is larger than the {MAX_IMAGE_BYTES >> 20} MiB "
                         f"hvtui loads as a {what}")
    return st.st_size


def open_regular(path: str, what: str = "kernel") -> tuple[int, int]:
    """(a read-only descriptor, the size) of a regular file, or one ImageError line saying
    why not. Looked at before it is opened (a device is not opened), opened without
    blocking (a FIFO put in its place is refused, not waited on), and checked again once
    open, the size then being the one that counts (it may have changed since)."""
    file_size(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror}") from None
    try:
        return fd, _checked_size(path, os.fstat(fd), what)
    except BaseException:
        os.close(fd)
        raise


def read_file(path: str, what: str = "kernel") -> bytes:
    """The whole of a regular file (at most MAX_IMAGE_BYTES), or one ImageError line saying
    why not."""
    fd, _ = open_regular(path, what)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageError(f"{path}: larger than the {MAX_IMAGE_BYTES >> 20} MiB hvtui loads as a {what}")
        return data
    except OSError as e:
        raise ImageError(f"{path}: {e.strerror}") from None
    finally:
        os.close(fd)


def detect(path: str, image: bytes):
    """The protocol module that accepts the file, or one line naming every format tried."""
    for proto in protocols():
        if proto.accepts(image):
            return proto
    names = ", ".join(p.NAME for p in protocols())
    raise ImageError(f"{path}: not a kernel hvtui can boot (tried {names})")


def load(ctx: BootContext) -> Boot:
    return detect(ctx.kernel_path, ctx.image).load(ctx)
