"""A bug in a command is one line on stderr and a traceback in the monitor's log; a
command with no monitor to talk to says so in one line."""
from __future__ import annotations

from hvtui import cli, paths


def test_a_bug_is_one_line_and_a_logged_traceback(monkeypatch, capsys):
    def broken():
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(cli, "_images", broken)
    assert cli.main(["images"]) == 1
    err = capsys.readouterr().err
    assert err == f"hvtui: unexpected error: ZeroDivisionError: a bug (traceback in {paths.monitor_log()})\n"
    logged = paths.monitor_log().read_text()
    assert "Traceback" in logged and "ZeroDivisionError: a bug" in logged and "hvtui images failed" not in err


def test_no_monitor_is_one_line(capsys):
    for args in (["ls"], ["pause", "x"], ["console", "x"], ["kill-server"]):
        assert cli.main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("hvtui: no monitor is running (") and err.count("\n") == 1, err
