"""`python -m hvtui` is `hvtui`."""
import sys

from hvtui.cli import main

sys.exit(main())
