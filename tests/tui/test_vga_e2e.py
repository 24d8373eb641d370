"""End to end: `hvtui run vgademo --console vga` in a real terminal (tmux, 100x30) as a user
runs it: the guest's VGA screen appears in its colours, typed keys come back on it with the
cursor after them, F10 ends the guest (exit 0) and the terminal's own screen is back; Ctrl-]
detaches (exit 130) with its message on the terminal's own screen."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from test_tui_e2e import Tmux

pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


def test_run_console_vga_in_tmux(tmp_path):
    command = (f"env TERM=xterm-256color PYTHONPATH={os.getcwd()} {sys.executable} -m hvtui run vgademo "
               f"--console vga --log-dir {tmp_path} --timeout 60")
    tmux = Tmux(f"hvtui-vga-{os.getpid()}")
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "hv", "-x", "100", "-y", "30",
             "sh", "-c", f"echo before-hvtui; {command}; echo hvtui exited with $?; sleep 60")
        screen = tmux.wait_for(lambda s: "- ready" in s, "the demo's screen")
        lines = screen.splitlines()
        assert lines[0].startswith(" hvtui VGA demo") and "before-hvtui" not in screen   # the alternate screen
        assert "☺☻♥♦♣♠" in lines[18] and "█▄▌▐▀" in lines[21]
        coloured = tmux("capture-pane", "-p", "-e", "-t", "hv").splitlines()
        assert "\x1b[97m" in coloured[0] and "\x1b[44m" in coloured[0]          # white on blue title
        tmux("send-keys", "-t", "hv", "-l", "Typed")
        tmux("send-keys", "-t", "hv", "Up")
        screen = tmux.wait_for(lambda s: "last: e0 c8 up break" in s, "the keys on the guest's screen")
        assert "type> Typed" in screen.splitlines()[23]
        assert tmux("display", "-p", "-t", "hv", "#{cursor_x},#{cursor_y}").strip() == "11,23"
        tmux("send-keys", "-t", "hv", "F10")
        screen = tmux.wait_for(lambda s: "hvtui exited" in s, "hvtui to exit")
        assert "hvtui exited with 0" in screen and "before-hvtui" in screen and "hvtui VGA demo" not in screen
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
    log = (tmp_path / "vgademo-1.log").read_text()
    assert "key: 14 t make 'T'" in log and "key: e0 48 up make" in log and "vgademo: bye" in log


def test_run_console_vga_detaches_with_ctrl_bracket(tmp_path):
    command = (f"env TERM=xterm-256color PYTHONPATH={os.getcwd()} {sys.executable} -m hvtui run vgademo "
               f"--console vga --log-dir {tmp_path} --timeout 60")
    tmux = Tmux(f"hvtui-vga-d-{os.getpid()}")
    try:
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "hv", "-x", "100", "-y", "30",
             "sh", "-c", f"{command}; echo hvtui exited with $?; sleep 60")
        tmux.wait_for(lambda s: "- ready" in s, "the demo's screen")
        tmux("send-keys", "-t", "hv", "C-]")
        screen = tmux.wait_for(lambda s: "hvtui exited" in s, "hvtui to exit")
        assert "hvtui exited with 130" in screen and "hvtui VGA demo" not in screen
        assert screen.splitlines()[0] == "hvtui: vgademo-1: detached (Ctrl-]); guest stopped"
    finally:
        subprocess.run(["tmux", "-L", tmux.socket, "kill-server"], capture_output=True)
