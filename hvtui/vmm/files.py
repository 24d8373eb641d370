"""What a path the user named is, when it is not a regular file: said in one line by the
loaders and the snapshot reader instead of reading a directory, a device or a FIFO; and
the first bytes of an hvtui snapshot, which tell one from a kernel."""
from __future__ import annotations

import stat

SNAPSHOT_MAGIC = b"HVTSNAP\0"     # vmm/snapshot.py's file format begins with it


def file_kind(mode: int) -> str | None:
    """What a file that is not a regular one is ("a directory", ...); None for a regular file."""
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"
