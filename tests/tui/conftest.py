"""Fixtures of the TUI tests: an HvtuiApp over a small fleet of real guests, driven by Pilot
at a fixed size (helpers in tuihelp.py)."""
from __future__ import annotations

import contextlib

import pytest

from tuihelp import SIZE, wait_until


@pytest.fixture
def tui(tmp_path, monkeypatch):
    """tui(specs) -> async context manager yielding (app, pilot) once the fleet has started."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    from hvtui.tui.app import HvtuiApp

    @contextlib.asynccontextmanager
    async def run(specs, config=None, size=SIZE):
        app = HvtuiApp(specs=specs, config=config, log_dir=tmp_path / "logs", sample_interval=0.2)
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_until(pilot, lambda: app.fleet_started, what="the fleet")
            await pilot.pause(0.1)
            yield app, pilot
        assert not app.monitor.host.guests, "the app left guests behind"
    return run
