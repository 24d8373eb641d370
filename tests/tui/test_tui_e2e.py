"""End to end: `hvtui --fleet FILE` in a real terminal (tmux, 120x40) as a user runs it:
the dashboard shows the guests, Enter attaches to the shell, typed keys reach it and its
answer appears on screen, Ctrl-] detaches, q quits with status 0 and guests' logs kept."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

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

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "hv")

    def wait_for(self, predicate, what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{text}")
            time.sleep(0.1)


def test_hvtui_in_tmux(tmp_path):
    # (COLUMNS and LINES from the test's environment would make Textual believe 80x24)
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[guest]]\nimage = "counter"\nname = "c1"\nmemory = 16\n'
                     '[[guest]]\nimage = "shell"\nname = "sh"\nmemory = 16\n')
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "PYTHONPATH": os.getcwd()}
    command = " ".join([f"{k}={v}" for k, v in env.items()] +
                       [sys.executable, "-m", "hvtui", "--fleet", str(fleet)])
    tmux = Tmux(f"hvtui-test-{os.getpid()}")
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "hv", "-x", "120", "-y", "40",
             "sh", "-c", f"env -u COLUMNS -u LINES TERM=xterm-256color {command}; echo hvtui exited with $?; sleep 60")
        screen = tmux.wait_for(lambda s: "c1" in s and "sh" in s and s.count("running") >= 2,
                               "the dashboard with two running guests")
        assert "host CPU" in screen and "Exits/s" in screen
        tmux("send-keys", "-t", "hv", "Down", "Enter")           # rows sorted by name: c1, sh
        tmux.wait_for(lambda s: "hvtui>" in s and "console sh" in s, "the shell's console")
        tmux("send-keys", "-t", "hv", "-l", "echo from-tmux")
        tmux("send-keys", "-t", "hv", "Enter")
        screen = tmux.wait_for(lambda s: any(line.strip(" │╰╯╭╮") == "from-tmux" for line in s.splitlines()),
                               "the shell's answer")
        assert "echo from-tmux" in screen
        tmux("send-keys", "-t", "hv", "C-]")
        tmux.wait_for(lambda s: "Exits/s" in s and "console sh" not in s, "the dashboard again")
        tmux("send-keys", "-t", "hv", "q")                      # live guests: it asks first
        tmux.wait_for(lambda s: "Quit hvtui? 2 live guest(s) will be killed." in s, "the question")
        tmux("send-keys", "-t", "hv", "y")
        screen = tmux.wait_for(lambda s: "hvtui exited" in s, "hvtui to exit")
        assert "hvtui exited with 0" in screen, screen
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
    log = tmp_path / "state" / "hvtui" / "logs" / "sh.log"
    assert b"from-tmux" in log.read_bytes()


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
