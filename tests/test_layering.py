"""The monitor runs headless: hvtui.vmm, hvtui.host and `hvtui run` never import Textual."""
import subprocess
import sys


def test_monitor_does_not_import_textual():
    code = ("import sys, hvtui.host, hvtui.vmm.machine, hvtui.cli, hvtui.bench.exits, hvtui.gdb.server; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'pyte')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
