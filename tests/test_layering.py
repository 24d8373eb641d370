"""The layers of DESIGN §2: the monitor runs headless (hvtui.vmm, hvtui.host, the daemon
and `hvtui run` never import Textual), and clients know the api, not the machines behind
it: the TUI and the CLI import nothing of hvtui.vmm or hvtui.host, and a client attached
to a daemon never even loads them."""
import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "hvtui"
CLIENTS = [PKG / "cli.py", PKG / "commands.py", PKG / "client.py", PKG / "stdin_pump.py", PKG / "vgaterm.py",
           *sorted((PKG / "tui").rglob("*.py"))]
MONITOR = ("hvtui.host", "hvtui.vmm", "hvtui._core", "hvtui.monitor", "hvtui.server", "hvtui.gdb")


def test_monitor_does_not_import_textual():
    code = ("import sys, hvtui.host, hvtui.vmm.machine, hvtui.cli, hvtui.server, hvtui.bench.exits, "
            "hvtui.gdb.server; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'pyte')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_clients_import_only_the_api():
    """The TUI, the CLI and the socket client reach the monitor through hvtui.api alone."""
    offenders = {str(p.relative_to(PKG.parent)): sorted(m for m in imported_modules(p) if m.startswith(MONITOR))
                 for p in CLIENTS}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_an_attached_client_loads_no_monitor_code():
    """The TUI and every command, loaded as for a daemon, bring in no KVM code at all."""
    code = ("import sys, hvtui.tui.app, hvtui.commands, hvtui.client, hvtui.cli; "
            f"bad = [m for m in sys.modules if m.startswith({MONITOR!r})]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
