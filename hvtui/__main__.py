"""`python -m hvtui` is `hvtui`."""
from hvtui.cli import entry

entry()
