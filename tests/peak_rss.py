"""Peak memory of a command a test runs, measured so that it is the command's own.

Linux carries a parent's peak RSS into a child it forks, and through the child's exec
(wait4's ru_maxrss is the high-water mark of the whole process, exec or not), so a
command started straight from pytest reports at least pytest's own peak: hundreds of MiB
once earlier tests have run. Here a fresh, small Python launcher forks the command and
reports that child's rusage (with its children's, for a shell pipeline): its mark starts
from the launcher's few MiB.
"""
from __future__ import annotations

import os
import subprocess
import sys

_LAUNCHER = r"""
import os, sys
report = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(report, b"%d %d" % (status, usage.ru_maxrss))
"""


def run_with_peak(argv: list[str], stdin=subprocess.DEVNULL) -> tuple[int, bytes, float]:
    """Run argv (stdout discarded); its exit status, its stderr and its peak RSS in MiB
    (for `sh -c PIPELINE`: the largest process of the pipeline)."""
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(w), *argv], stdin=stdin,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(w,))
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as report:
        err = proc.stderr.read()
        proc.wait()
        status, maxrss_kib = (int(x) for x in report.read().split())
    return os.waitstatus_to_exitcode(status), err, maxrss_kib / 1024
