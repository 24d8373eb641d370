"""TUI parts that need no KVM: keys to bytes, the terminal widget, config and fleet files,
formatting, scrollback search."""
from __future__ import annotations

import pytest
from textual.app import App

from hvtui.errors import ConfigError
from hvtui.tui import format as fmt
from hvtui.tui.config import Config, load_config, load_fleet
from hvtui.tui.screens.scrollback import ScrollbackScreen
from hvtui.tui.widgets.terminal import Terminal, key_to_bytes


@pytest.mark.parametrize("key,char,app_cursor,expected", [
    ("a", "a", False, b"a"),
    ("A", "A", False, b"A"),
    ("enter", "\r", False, b"\r"),
    ("backspace", "\x7f", False, b"\x7f"),
    ("tab", "\t", False, b"\t"),
    ("escape", "\x1b", False, b"\x1b"),
    ("ctrl+c", "\x03", False, b"\x03"),
    ("ctrl+a", "\x01", False, b"\x01"),
    ("ctrl+z", None, False, b"\x1a"),
    ("up", None, False, b"\x1b[A"),
    ("up", None, True, b"\x1bOA"),
    ("left", None, True, b"\x1bOD"),
    ("home", None, False, b"\x1b[H"),
    ("f1", None, False, b"\x1bOP"),
    ("f5", None, False, b"\x1b[15~"),
    ("f12", None, False, b"\x1b[24~"),
    ("delete", None, False, b"\x1b[3~"),
    ("eacute", "é", False, "é".encode()),
    ("shift", None, False, None),
])
def test_key_to_bytes(key, char, app_cursor, expected):
    assert key_to_bytes(key, char, app_cursor) == expected


class TermApp(App):
    def compose(self):
        yield Terminal(40, 6)


async def test_terminal_renders_pyte_screen_and_repaints_only_dirty_lines():
    app = TermApp()
    async with app.run_test(size=(60, 10)) as pilot:
        term = app.query_one(Terminal)
        term.feed(b"hello\r\nworld \x1b[31mred\x1b[0m\r\n")
        await pilot.pause(0.1)
        assert term.display_lines()[0].rstrip() == "hello"
        assert term.display_lines()[1].rstrip() == "world red"
        strip = term.render_line(1)
        assert strip.text.rstrip() == "world red"
        assert any(seg.style and seg.style.color and seg.style.color.name == "red" for seg in strip)
        before = term.lines_repainted
        term.feed(b"x")                         # one character on line 2
        await pilot.pause(0.1)
        assert term.lines_repainted - before == 1
        assert not term.app_cursor
        term.feed(b"\x1b[?1h")                  # DECCKM on: application cursor keys
        assert term.app_cursor
        # a burst of output is painted in few frames, not one per write
        frames = term.repaints
        for i in range(200):
            term.feed(f"line {i}\r\n".encode())
        await pilot.pause(0.2)
        assert term.repaints - frames <= 10
        assert "line 199" in term.text()


def test_load_fleet(tmp_path):
    f = tmp_path / "fleet.toml"
    f.write_text('[[guest]]\nimage = "counter"\nname = "a"\nmemory = 32\n'
                 '[[guest]]\nimage = "crash"\ncmdline = "ud"\nvcpus = 2\n')
    specs = load_fleet(f)
    assert [(s.image, s.name, s.memory_mib, s.vcpus, s.boot.cmdline) for s in specs] == [
        ("counter", "a", 32, 1, None), ("crash", "", 64, 2, "ud")]


@pytest.mark.parametrize("text,needle", [
    ('[[guest]]\nimage = "counter"\nmemroy = 3\n', "unknown key"),
    ('[[guest]]\nname = "x"\n', "no image"),
    ('[[guest]]\nimage = "counter"\nmemory = "lots"\n', "memory"),
    ('[[guest]]\nimage = "a"\nname = "x"\n[[guest]]\nimage = "b"\nname = "x"\n', "used twice"),
    ('x = 1\n', "no [[guest]]"),
    ('[[guest\n', "fleet file"),
])
def test_load_fleet_rejects(tmp_path, text, needle):
    f = tmp_path / "fleet.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        load_fleet(f)


def test_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config() == Config()
    (tmp_path / "hvtui").mkdir()
    (tmp_path / "hvtui" / "config.toml").write_text(
        'theme = "nord"\n[console]\nprefix = "ctrl+b"\n[keymap]\npause = "space"\n')
    cfg = load_config()
    assert (cfg.theme, cfg.prefix_key, cfg.detach_key, cfg.keymap) == (
        "nord", "ctrl+b", "ctrl+right_square_bracket", {"pause": "space"})
    (tmp_path / "hvtui" / "config.toml").write_text('[console]\ncolumns = 3\n')
    with pytest.raises(ConfigError, match="out of range"):
        load_config()


def test_config_snapshot_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert load_config().snapshots == tmp_path / "data" / "hvtui" / "snapshots"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Config().snapshots == tmp_path / "home" / ".local" / "share" / "hvtui" / "snapshots"
    (tmp_path / "config" / "hvtui").mkdir(parents=True)
    (tmp_path / "config" / "hvtui" / "config.toml").write_text('snapshot_dir = "~/snaps"\n')
    assert load_config().snapshots == tmp_path / "home" / "snaps"
    (tmp_path / "config" / "hvtui" / "config.toml").write_text('snapshot_dir = 3\n')
    with pytest.raises(ConfigError, match="snapshot_dir: expected str"):
        load_config()


def test_snapshot_files_newest_first(tmp_path):
    import os

    from hvtui.tui.screens.modals import snapshot_files
    assert snapshot_files(tmp_path / "missing") == []
    for i, name in enumerate(["a.hvsnap", "b.hvsnap", "notes.txt"]):
        (tmp_path / name).write_bytes(b"x" * (i + 1))
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    (tmp_path / "dir.hvsnap").mkdir()
    assert [p.name for p, _ in snapshot_files(tmp_path)] == ["b.hvsnap", "a.hvsnap"]


def test_format_helpers():
    assert fmt.sparkline([0, 5, 10], 5) == "  ▁▅█"
    assert fmt.sparkline([], 3) == "   "
    assert fmt.bar(0.5, 4) == "██  "
    assert fmt.bar(1.0, 2) == "██"
    assert fmt.human_rate(1500) == "1.5k" and fmt.human_rate(12) == "12"
    assert fmt.uptime(75) == "1:15" and fmt.uptime(3720) == "1h02m"
    assert fmt.console_tail(b"a\r\nb\x1b[1mold\x1b[0m\r\nc\rd\r\n", 3) == ["bold", "d", ""]


def test_scrollback_find():
    s = ScrollbackScreen("g", b"alpha\r\nbeta\r\nalpha beta\r\n")
    assert s.find("beta") == (1, 0)
    assert s.find("beta") == (2, 6)
    assert s.find("beta") == (1, 0)          # wraps
    assert s.find("BETA", -1) == (2, 6)
    assert s.find("nothing") is None


def test_cli_fleet_errors_are_one_line(tmp_path, capsys):
    from hvtui.cli import main
    assert main(["--fleet", str(tmp_path / "missing.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hvtui: fleet file") and "no such file" in err and err.count("\n") == 1


def test_cli_bad_image_in_fleet_is_one_line(tmp_path, capsys):
    from hvtui.cli import main
    f = tmp_path / "fleet.toml"
    f.write_text('[[guest]]\nimage = "nosuchimage"\n')
    assert main(["--fleet", str(f)]) == 1
    err = capsys.readouterr().err
    assert "unknown image 'nosuchimage'" in err and err.count("\n") == 1
