"""Modal screens: a new guest (image, memory, vCPUs, name), a yes/no confirmation, help,
and the snapshot ones: where to save a snapshot, which file to restore (a picker over the
snapshot directory plus a path for any other file), how many clones under which prefix.

Each modal dismisses with its answer (a GuestSpec, a bool, a path, nothing); the caller decides.
"""
from __future__ import annotations

import datetime
import os
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from hvtui import images
from hvtui.api import Boot, GuestSpec, split_initrd
from hvtui.tui import format as fmt

SNAPSHOT_SUFFIX = ".hvsnap"
MAX_CLONES = 16


class PathSuggester(Suggester):
    """Completes a file path as a shell does: the first entry of its folder that starts
    with what is typed (folders end in /); Tab or Right accepts."""

    def __init__(self):
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        path = os.path.expanduser(value)
        folder, stem = os.path.split(path)
        try:
            names = sorted(n for n in os.listdir(folder or ".") if n.startswith(stem) and not
                           (n.startswith(".") and not stem.startswith(".")))
        except OSError:
            return None
        if not names:
            return None
        full = os.path.join(folder, names[0])
        if os.path.isdir(full):
            full += os.sep
        return value + full[len(path):] if full.startswith(path) else None


class NewGuestScreen(ModalScreen[GuestSpec | None]):
    """Ask for a new guest: a built-in image or a kernel file (with its initrd or modules),
    memory, vCPUs, name, command line."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, image: str = "counter", **kwargs):
        super().__init__(**kwargs)
        self.image = image if image in images.BUILTINS else "counter"

    def compose(self):
        with VerticalScroll(id="new-guest", classes="dialog"):
            yield Label("New guest", classes="dialog-title")
            with Grid(id="new-guest-form"):
                yield Label("Image")
                yield Select([(f"{n} - {b.description}", n) for n, b in images.BUILTINS.items()],
                             value=self.image, allow_blank=False, compact=True, id="image")
                yield Label("or a kernel")
                yield Input(compact=True, placeholder="path: bzImage, vmlinux (PVH), Multiboot 1/2",
                            id="kernel", suggester=PathSuggester())
                yield Label("Initrd/modules")
                yield Input(compact=True, placeholder="FILE[,FILE ARGS...] (Linux initramfs, Multiboot modules)",
                            id="initrd", suggester=PathSuggester())
                yield Label("Memory (MiB)")
                yield Input("64", compact=True, id="memory", type="integer")
                yield Label("vCPUs")
                yield Input("1", compact=True, id="vcpus", type="integer")
                yield Label("Name")
                yield Input(compact=True, placeholder="automatic", id="name")
                yield Label("Append")
                yield Input(compact=True, placeholder="the kernel's command line (default: the image's)",
                            id="cmdline")
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
        kernel = os.path.expanduser(self.query_one("#kernel", Input).value.strip())
        if kernel and not os.path.isfile(kernel):
            raise ValueError(f"Kernel: no such file: {kernel}")
        initrd = split_initrd(self.query_one("#initrd", Input).value)
        for item in initrd:
            if not os.path.isfile(os.path.expanduser(item.split(" ", 1)[0])):
                raise ValueError(f"Initrd/modules: no such file: {item.split(' ', 1)[0]}")
        memory = number("memory", "Memory", 2, 1 << 20)
        vcpus = number("vcpus", "vCPUs", 1, 64)
        name = self.query_one("#name", Input).value.strip()
        cmdline = self.query_one("#cmdline", Input).value
        return GuestSpec(image=kernel or str(image), name=name, memory_mib=memory, vcpus=vcpus,
                         boot=Boot(cmdline=cmdline or None, initrd=tuple(os.path.expanduser(x) for x in initrd)))

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


class SnapshotScreen(ModalScreen[str | None]):
    """Ask where to save a snapshot of a guest (prefilled with the default path)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, guest: str, default_path: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.guest, self.default_path = guest, os.fspath(default_path)

    def compose(self):
        with Vertical(id="snapshot", classes="dialog"):
            yield Label(f"Snapshot of {self.guest}", classes="dialog-title")
            yield Static("A running guest pauses while it is saved, then goes on; "
                         "a paused one stays paused.", classes="dialog-note")
            yield Label("File")
            yield Input(self.default_path, id="snapshot-path")
            yield Static("", id="snapshot-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#snapshot-path", Input).focus()

    def _submit(self) -> None:
        path = self.query_one("#snapshot-path", Input).value.strip()
        if not path:
            self.query_one("#snapshot-error", Static).update("File: a path is needed")
            return
        self.dismiss(os.path.expanduser(path))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


def snapshot_files(directory: str | os.PathLike) -> list[tuple[Path, os.stat_result]]:
    """The snapshot files of a directory, newest first (none when it does not exist)."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for e in entries:
        if e.name.endswith(SNAPSHOT_SUFFIX) and e.is_file():
            try:
                found.append((Path(e.path), e.stat()))
            except OSError:
                pass
    found.sort(key=lambda f: (-f[1].st_mtime, f[0].name))
    return found


class RestoreScreen(ModalScreen[tuple[str, str | None] | None]):
    """Pick a snapshot to restore: the files of the snapshot directory (name, size, time),
    or any other file by path; and the new guest's name (blank: the snapshot's, or a free
    variant of it). Dismisses with (path, name or None)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, directory: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.directory = Path(directory)
        self.files = snapshot_files(self.directory)

    def compose(self):
        with Vertical(id="restore", classes="dialog"):
            yield Label("Restore a snapshot", classes="dialog-title")
            yield Static(f"{self.directory}" + ("" if self.files else ": no snapshots here yet"),
                         id="restore-dir", classes="dialog-note")
            yield DataTable(id="restore-files", cursor_type="row", zebra_stripes=True)
            with Grid(id="restore-form", classes="dialog-form"):
                yield Label("File")
                yield Input(os.fspath(self.files[0][0]) if self.files else "", id="restore-path",
                            placeholder="path to a .hvsnap file")
                yield Label("Name")
                yield Input(placeholder="the snapshot's (or a free variant)", id="restore-name")
            yield Static("", id="restore-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Restore", variant="primary", id="restore-button")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        table = self.query_one("#restore-files", DataTable)
        table.add_column("File", key="file", width=36)
        table.add_column("Size", key="size", width=10)
        table.add_column("On disk", key="disk", width=10)     # zero pages are holes
        table.add_column("Saved", key="mtime", width=19)
        for path, st in self.files:
            when = datetime.datetime.fromtimestamp(st.st_mtime).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(path.name, Text(fmt.human_bytes(st.st_size), justify="right"),
                          Text(fmt.human_bytes(st.st_blocks * 512), justify="right"), when,
                          key=os.fspath(path))
        table.display = bool(self.files)
        (table if self.files else self.query_one("#restore-path", Input)).focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self.query_one("#restore-path", Input).value = event.row_key.value

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key is not None and event.row_key.value:
            self.query_one("#restore-path", Input).value = event.row_key.value
        self._submit()

    def _submit(self) -> None:
        path = self.query_one("#restore-path", Input).value.strip()
        name = self.query_one("#restore-name", Input).value.strip()
        if not path:
            self.query_one("#restore-error", Static).update("File: pick one above or type a path")
            return
        self.dismiss((os.path.expanduser(path), name or None))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "restore-button":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class CloneScreen(ModalScreen[tuple[int, str] | None]):
    """Ask how many clones of a guest (1-16) and their name prefix: clones are named
    prefix-1 ... prefix-N. Dismisses with (N, prefix)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="modal.cancel")]

    def __init__(self, guest: str, taken=(), **kwargs):
        super().__init__(**kwargs)
        self.guest = guest
        self.taken = set(taken)

    def compose(self):
        with Vertical(id="clone", classes="dialog"):
            yield Label(f"Clone {self.guest}", classes="dialog-title")
            yield Static("A live snapshot of the guest is saved to the snapshot directory, "
                         "then restored once per clone.", classes="dialog-note")
            with Grid(id="clone-form", classes="dialog-form"):
                yield Label(f"Clones (1-{MAX_CLONES})")
                yield Input("2", id="clone-count", type="integer")
                yield Label("Name prefix")
                yield Input(f"{self.guest}-clone", id="clone-prefix")
            yield Static("", id="clone-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Clone", variant="primary", id="clone-button")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#clone-count", Input).focus()

    def answer(self) -> tuple[int, str]:
        """(N, prefix) from the form; ValueError names a bad field."""
        text = self.query_one("#clone-count", Input).value.strip()
        try:
            count = int(text, 10)
        except ValueError:
            raise ValueError(f"Clones: not a whole number: {text!r}") from None
        if not 1 <= count <= MAX_CLONES:
            raise ValueError(f"Clones: between 1 and {MAX_CLONES}")
        prefix = self.query_one("#clone-prefix", Input).value.strip()
        if not prefix or any(c.isspace() or c == "/" for c in prefix):
            raise ValueError("Name prefix: needed, without spaces or '/'")
        clash = [f"{prefix}-{i}" for i in range(1, count + 1) if f"{prefix}-{i}" in self.taken]
        if clash:
            raise ValueError(f"Name prefix: {clash[0]} already exists")
        return count, prefix

    def _submit(self) -> None:
        try:
            answer = self.answer()
        except ValueError as e:
            self.query_one("#clone-error", Static).update(str(e))
            return
        self.dismiss(answer)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "clone-button":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
