"""Modal screens: a new guest (image, memory, vCPUs, name), a yes/no confirmation, help.

Each modal dismisses with its answer (a GuestSpec, a bool, nothing); the caller decides.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from hvtui import images
from hvtui.host import GuestSpec


class NewGuestScreen(ModalScreen[GuestSpec | None]):
    """Ask for a new guest: image, memory, vCPUs, name, command line."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, image: str = "counter", **kwargs):
        super().__init__(**kwargs)
        self.image = image if image in images.BUILTINS else "counter"

    def compose(self):
        with Vertical(id="new-guest", classes="dialog"):
            yield Label("New guest", classes="dialog-title")
            with Grid(id="new-guest-form"):
                yield Label("Image")
                yield Select([(f"{n} - {b.description}", n) for n, b in images.BUILTINS.items()],
                             value=self.image, allow_blank=False, id="image")
                yield Label("Memory (MiB)")
                yield Input("64", id="memory", type="integer")
                yield Label("vCPUs")
                yield Input("1", id="vcpus", type="integer")
                yield Label("Name")
                yield Input(placeholder="automatic", id="name")
                yield Label("Command line")
                yield Input(placeholder="the image's default", id="cmdline")
            yield Static("", id="new-guest-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#image", Select).focus()

    def spec(self) -> GuestSpec:
        """The guest the form describes; ValueError names a bad field."""
        def number(wid: str, label: str, lo: int, hi: int) -> int:
            text = self.query_one(f"#{wid}", Input).value.strip()
            try:
                value = int(text, 0)
            except ValueError:
                raise ValueError(f"{label}: not a whole number: {text!r}") from None
            if not lo <= value <= hi:
                raise ValueError(f"{label}: between {lo} and {hi}")
            return value
        image = self.query_one("#image", Select).value
        memory = number("memory", "Memory", 2, 1 << 20)
        vcpus = number("vcpus", "vCPUs", 1, 64)
        name = self.query_one("#name", Input).value.strip()
        cmdline = self.query_one("#cmdline", Input).value
        return GuestSpec(image=str(image), name=name, memory_mib=memory, vcpus=vcpus,
                         cmdline=cmdline or None)

    def _submit(self) -> None:
        try:
            spec = self.spec()
        except ValueError as e:
            self.query_one("#new-guest-error", Static).update(str(e))
            return
        self.dismiss(spec)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "create":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A question answered with y (or Enter on Yes) or n / Escape."""

    BINDINGS = [Binding("y", "answer(True)", "Yes", id="modal.yes"),
                Binding("n,escape", "answer(False)", "No", id="modal.no")]

    def __init__(self, question: str, **kwargs):
        super().__init__(**kwargs)
        self.question = question

    def compose(self):
        with Vertical(id="confirm", classes="dialog"):
            yield Label(self.question, id="confirm-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes", variant="error", id="yes")
                yield Button("No", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard and the console, from the live bindings and the config."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="modal.close")]

    def __init__(self, dashboard_keys: list[tuple[str, str]], console_keys: list[tuple[str, str]],
                 **kwargs):
        super().__init__(**kwargs)
        self.dashboard_keys, self.console_keys = dashboard_keys, console_keys

    def compose(self):
        def table(rows):
            t = Table.grid(padding=(0, 2))
            t.add_column(style="bold cyan", min_width=14)
            t.add_column()
            for key, what in rows:
                t.add_row(key, what)
            return t
        with VerticalScroll(id="help", classes="dialog"):
            yield Label("hvtui keys", classes="dialog-title")
            yield Static(Text("Dashboard", style="bold underline"))
            yield Static(table(self.dashboard_keys))
            yield Static(Text("Console", style="bold underline"))
            yield Static(table(self.console_keys))
            yield Static(Text("Ctrl+P opens the command palette (actions and images). "
                              "Settings: $XDG_CONFIG_HOME/hvtui/config.toml.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
