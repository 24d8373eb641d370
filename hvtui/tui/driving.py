"""Drive the app headless (tests, the screenshot script, the benchmark) under Pilot.

Pilot.press waits after each key for the *process* to go idle (process CPU time against
wall time); guests spin on their vCPU threads, so that never happens and each key would
cost two seconds. press() here sends the same key events and waits only for the screen
to have processed them.
"""
from __future__ import annotations

import asyncio
import unicodedata

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key


def key_event(key: str) -> events.Key:
    """The Key event Pilot would send for key ("a", "enter", "ctrl+a", "/" ...)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def press(pilot, *keys: str) -> None:
    app = pilot.app
    for key in keys:
        event = key_event(key)
        event.set_sender(app)
        app._driver.send_message(event)
        await pilot._wait_for_screen()
        await asyncio.sleep(0.01)
    await pilot._wait_for_screen()


async def select(pilot, app, name: str, settle: float = 0.05) -> None:
    """Move the dashboard's cursor to a guest's row (once the row exists), then let the
    app run settle seconds (the panel follows the selection)."""
    table = app.screen.table
    await wait_until(pilot, lambda: name in table.order, what=f"{name} in the table")
    table.move_cursor(row=table.order.index(name), animate=False)
    await pilot.pause(settle)
    assert table.selected == name


async def wait_until(pilot, condition, timeout: float = 15.0, what: str = "condition"):
    """Let the app run until condition() is true; its value. AssertionError on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)
