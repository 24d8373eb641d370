"""The Textual console of hvtui: a dashboard of guests, serial consoles, keyboard lifecycle.

`hvtui` with no subcommand calls run_tui(args). Textual is imported only here and below,
never by hvtui.vmm or hvtui.host, so the monitor keeps running headless.
"""
from __future__ import annotations


def run_tui(args) -> int:
    from hvtui.tui.app import run_tui as _run_tui
    return _run_tui(args)
