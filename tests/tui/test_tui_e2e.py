"""End to end in a real terminal (tmux, 120x40) as a user runs it: the TUI attaches to the
user's monitor (started in the background), shows its guests, takes console keys, and
quits leaving them running; commands from the shell act on the same guests that two TUIs
show; kill-server ends it all. Each test has its own XDG folders (conftest), so its monitor
is its own, and stops it at the end."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    def __init__(self, socket: str):
        self.socket = socket

    def __call__(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def screen(self, session: str = "hv") -> str:
        return self("capture-pane", "-p", "-t", session)

    def wait_for(self, predicate, what: str, timeout: float = 30.0, session: str = "hv") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(session)
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)


def hvtui_cmd(*args: str, **env) -> subprocess.CompletedProcess:
    """`hvtui ARGS` as a user types it, in this test's XDG folders."""
    return subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.getcwd(), **env})


def tui_command(*args: str) -> str:
    env = {k: os.environ[k] for k in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_DATA_HOME")}
    env["PYTHONPATH"] = os.getcwd()
    return " ".join([f"{k}={v}" for k, v in env.items()] + [sys.executable, "-m", "hvtui", *args])


def open_tui(tmux: Tmux, session: str, *args: str, config_home) -> None:
    command = f"XDG_CONFIG_HOME={config_home} " + tui_command(*args)
    # (COLUMNS and LINES from the test's environment would make Textual believe 80x24)
    tmux("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
         "sh", "-c", f"env -u COLUMNS -u LINES TERM=xterm-256color {command}; echo hvtui exited with $?; sleep 60")


def row(screen: str, name: str) -> list[str]:
    """The words of the dashboard row of guest name ([] when it has none yet)."""
    return next((line.split() for line in screen.splitlines() if line.split()[:1] == [name]), [])


def test_hvtui_in_tmux(tmp_path):
    """`hvtui --fleet FILE`: the monitor starts in the background with the fleet; the TUI
    attaches; a console takes keys; q detaches at once (the guests go on) with status 0."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[guest]]\nimage = "counter"\nname = "c1"\nmemory = 16\n'
                     '[[guest]]\nimage = "shell"\nname = "sh"\nmemory = 16\n')
    tmux = Tmux(f"hvtui-test-{os.getpid()}")
    try:
        open_tui(tmux, "hv", "--fleet", str(fleet), config_home=tmp_path / "config")
        # the rows themselves: the monitor starts c1 first, and "running" is also in the
        # header's count and c1's detail pane, "sh" in the footer's "Snapshot"
        screen = tmux.wait_for(lambda s: row(s, "c1")[1:2] == row(s, "sh")[1:2] == ["running"],
                               "the dashboard with two running guests")
        assert "host CPU" in screen and "Exits/s" in screen and "(monitor)" in screen
        tmux("send-keys", "-t", "hv", "Down", "Enter")           # rows sorted by name: c1, sh
        tmux.wait_for(lambda s: "hvtui>" in s and "console sh" in s, "the shell's console")
        tmux("send-keys", "-t", "hv", "-l", "echo from-tmux")
        tmux("send-keys", "-t", "hv", "Enter")
        screen = tmux.wait_for(lambda s: any(line.strip(" │╰╯╭╮") == "from-tmux" for line in s.splitlines()),
                               "the shell's answer")
        assert "echo from-tmux" in screen
        tmux("send-keys", "-t", "hv", "C-]")
        tmux.wait_for(lambda s: "Exits/s" in s and "console sh" not in s, "the dashboard again")
        tmux("send-keys", "-t", "hv", "q")                      # attached: no question, it detaches
        screen = tmux.wait_for(lambda s: "hvtui exited" in s, "hvtui to exit")
        assert "hvtui exited with 0" in screen, screen
        ls = hvtui_cmd("ls")
        assert ls.returncode == 0 and [line.split()[:2] for line in ls.stdout.splitlines()[1:]] == [
            ["c1", "running"], ["sh", "running"]], ls.stdout
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
        hvtui_cmd("kill-server")
    log = Path(os.environ["XDG_STATE_HOME"]) / "hvtui" / "logs" / "sh.log"
    assert b"from-tmux" in log.read_bytes()


def test_plain_hvtui_starts_the_monitor_with_the_built_in_fleet(tmp_path):
    """The README's first command ends in `hvtui`: with no monitor running it starts one in
    the background, on the built-in guests, and shows them."""
    tmux = Tmux(f"hvtui-test3-{os.getpid()}")
    try:
        open_tui(tmux, "hv", config_home=tmp_path / "config")
        screen = tmux.wait_for(lambda s: all(n in s for n in ("counter-1", "counter-2", "shell-1", "hello-1"))
                               and "exited 0" in s, "the built-in fleet")
        assert screen.count("running") >= 3
        tmux("send-keys", "-t", "hv", "q")
        tmux.wait_for(lambda s: "hvtui exited with 0" in s, "the TUI to quit")
        names = [line.split()[0] for line in hvtui_cmd("ls").stdout.splitlines()[1:]]
        assert names == ["counter-1", "counter-2", "hello-1", "shell-1"]
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
        hvtui_cmd("kill-server")


def counts_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"count (\d+)", text)]


def test_guests_outlive_the_tui_and_every_client_sees_the_same(tmp_path):
    """The issue's walk-through: a guest started from the shell runs in the monitor; the
    TUI shows it live; quitting the TUI leaves it counting; a pause from the command line
    shows in two TUIs at once; `hvtui console` prints its output and Ctrl-] leaves it
    running; `hvtui kill-server` ends the guests, the monitor and both TUIs."""
    r = hvtui_cmd("start", "counter", "--name", "c1", "--memory", "16")
    assert r.returncode == 0 and r.stdout.startswith("c1: running"), r.stderr
    ls = hvtui_cmd("ls")
    assert ls.stdout.splitlines()[1].split()[:2] == ["c1", "running"], ls.stdout
    tmux = Tmux(f"hvtui-test2-{os.getpid()}")
    try:
        open_tui(tmux, "hv", config_home=tmp_path / "config")
        tmux.wait_for(lambda s: "c1" in s and "running" in s and "counter-1" not in s, "c1 in the TUI")
        tmux("send-keys", "-t", "hv", "Enter")
        shown = tmux.wait_for(lambda s: len(counts_in(s)) >= 3 and "console c1" in s, "c1 counting on screen")
        tmux("send-keys", "-t", "hv", "C-]")
        tmux.wait_for(lambda s: "Exits/s" in s and "console c1" not in s, "the dashboard again")
        tmux("send-keys", "-t", "hv", "q")
        tmux.wait_for(lambda s: "hvtui exited with 0" in s, "the TUI to quit")
        seen = max(counts_in(shown))
        log = Path(os.environ["XDG_STATE_HOME"]) / "hvtui" / "logs" / "c1.log"
        deadline = time.monotonic() + 20
        while max(counts_in(log.read_text()), default=0) < seen + 10:     # c1 goes on without a TUI
            assert time.monotonic() < deadline, "c1 stopped counting when the TUI quit"
            time.sleep(0.1)
        assert hvtui_cmd("ls").stdout.splitlines()[1].split()[:2] == ["c1", "running"]

        tmux("kill-session", "-t", "hv")
        for session in ("one", "two"):
            open_tui(tmux, session, config_home=tmp_path / "config")
        for session in ("one", "two"):
            tmux.wait_for(lambda s: "c1" in s and "running" in s, f"c1 running in TUI {session}", session=session)
        assert hvtui_cmd("pause", "c1").stdout == "c1: paused\n"
        for session in ("one", "two"):
            tmux.wait_for(lambda s: "paused" in s, f"the pause in TUI {session}", timeout=5, session=session)

        assert hvtui_cmd("resume", "c1").returncode == 0
        console = subprocess.Popen([sys.executable, "-m", "hvtui", "console", "c1"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "PYTHONPATH": os.getcwd()})
        out = b""
        while len(counts_in(out.decode())) < 3:
            out += os.read(console.stdout.fileno(), 4096)
        console.stdin.write(b"\x1d")                           # Ctrl-]
        console.stdin.flush()
        _, err = console.communicate(timeout=20)
        assert console.returncode == 0 and b"detached from c1; it goes on (running)" in err, err
        assert hvtui_cmd("ls").stdout.splitlines()[1].split()[:2] == ["c1", "running"]

        r = hvtui_cmd("kill-server")
        assert r.returncode == 0 and "1 live guest(s) ended" in r.stdout, r.stdout + r.stderr
        for session in ("one", "two"):
            tmux.wait_for(lambda s: "hvtui exited with 0" in s and "monitor closed the connection" in s,
                          f"TUI {session} to end with the monitor", session=session)
        r = hvtui_cmd("ls")
        assert r.returncode == 1 and "no monitor is running" in r.stderr
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
        hvtui_cmd("kill-server")


def test_bench_tui_runs(capsys):
    """`hvtui bench tui` end to end on a tiny load: every key it typed reached the guest
    and came back on screen, the guests ran throughout, and its figures are consistent.
    How fast is reported, not asserted."""
    import json

    from hvtui.cli import main
    assert main(["bench", "tui", "--guests", "2", "--seconds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["guests"] == result["guests_running_at_end"] == 2
    assert result["keys"] >= 3 and result["keys_missed"] == 0, result
    assert 0 < result["latency_ms_median"] <= result["latency_ms_p99"] <= result["latency_ms_max"]
    assert 0 < result["main_thread_cpu_share"] and result["seconds"] >= 1
    assert result["kvm"] in ("kvm", "kvm_pvm")
