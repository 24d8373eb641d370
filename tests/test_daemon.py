"""The monitor as a per-user daemon on real KVM: `hvtui serve`, the commands, and what no
client can do to it: another uid cannot connect, a client SIGKILLed mid-stream, malformed
and oversized requests, four clients hammering it, a client that stops reading."""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvtui import api, paths, wire
from hvtui.client import RemoteMonitor

pytestmark = pytest.mark.kvm

ENV = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def hvtui(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hvtui", *args], capture_output=True, timeout=timeout,
                          input=input, env={**os.environ, **ENV})


def counts(text: bytes | str) -> list[int]:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return [int(n) for n in re.findall(r"^count (\d+)\r?$", text, re.M)]


@pytest.fixture
def serve():
    """`hvtui serve` in the foreground (as a user runs it in a terminal); stopped with
    kill-server at the end, which must end the process."""
    proc = subprocess.Popen([sys.executable, "-m", "hvtui", "serve"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **ENV})
    deadline = time.monotonic() + 20
    while not paths.socket_path().exists() or not _connects(paths.socket_path()):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "hvtui serve did not listen"
        time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        hvtui("kill-server")
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("kill-server did not end the monitor")


def _connects(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


async def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_serve_commands_and_kill_server(serve):
    folder = paths.runtime_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket_path().stat().st_mode) == 0o600
    r = hvtui("start", "counter", "--name", "c1", "--memory", "16")
    assert r.returncode == 0 and r.stdout.startswith(b"c1: running"), r.stderr
    r = hvtui("start", "counter", "--name", "c1")
    assert r.returncode == 1 and r.stderr == b"hvtui: a guest named 'c1' already exists\n"
    ls = hvtui("ls", "--json")
    [c1] = json.loads(ls.stdout)
    assert c1["name"] == "c1" and c1["status"] == "running" and c1["spec"]["memory_mib"] == 16
    assert hvtui("pause", "c1").stdout == b"c1: paused\n"
    assert hvtui("pause", "c1").stderr == b"hvtui: c1 is paused; only a guest that is running can be paused\n"
    assert hvtui("resume", "c1").stdout == b"c1: running\n"
    time.sleep(1)
    stats = json.loads(hvtui("stats", "c1", "--json").stdout)
    assert stats["by_reason"].get("io", 0) > 0 and stats["ports"][0]["port"] in (0x3F8, 0x3FD, 0x520)
    logs = hvtui("logs", "c1").stdout
    assert counts(logs)[:3] == [0, 1, 2]
    r = hvtui("kill", "c1")
    assert r.stdout == b"c1: killed\n"
    assert hvtui("ls").stdout.splitlines()[1].split()[:2] == [b"c1", b"killed"]
    r = hvtui("start", "c1")                          # an ended guest boots again from its spec: run 2
    assert r.stdout == b"c1: started again (run 2)\n", r.stderr
    time.sleep(0.5)
    logdir = paths.log_dir()
    assert counts((logdir / "c1.2.log").read_bytes())[:1] == [0]
    assert b"killed" in (logdir / "c1.1.log").read_bytes()        # the first run's log is kept
    assert (logdir / "c1.log").resolve() == logdir / "c1.2.log"
    r = hvtui("serve")
    assert r.returncode == 1 and r.stderr == f"hvtui: a monitor is already running ({paths.socket_path()})\n".encode()
    r = hvtui("nosuchcommand")
    assert r.returncode == 2
    r = hvtui("kill-server")
    assert r.returncode == 0 and b"(1 live guest(s) ended)" in r.stdout
    serve.wait(20)
    assert serve.returncode == 0 and not paths.socket_path().exists()
    assert b"killed" in (logdir / "c1.2.log").read_bytes() or b"stopped" in (logdir / "c1.2.log").read_bytes()


def test_the_first_command_starts_the_monitor_in_the_background():
    assert hvtui("ls").stderr.startswith(b"hvtui: no monitor is running")
    r = hvtui("start", "hello", "--memory", "16")
    assert r.returncode == 0 and r.stdout.startswith(b"hello-1: "), r.stderr
    time.sleep(0.5)
    assert hvtui("ls").stdout.splitlines()[1].split()[:3] == [b"hello-1", b"exited", b"0"]
    r = hvtui("kill-server")
    assert r.returncode == 0 and b"(0 live guest(s) ended)" in r.stdout


def test_the_monitor_started_from_a_clone_loads_the_installed_hvtui(tmp_path):
    """The README's first command: `pip install .` in a clone, then `hvtui` in the clone's
    folder, whose hvtui/ holds the sources without the built extension. The monitor the
    command starts (`python -m hvtui serve`) must load the installed hvtui, not the
    hvtui/ of the folder it was started from (`-m` puts the current folder first)."""
    clone = tmp_path / "clone"
    (clone / "hvtui").mkdir(parents=True)
    (clone / "hvtui" / "__init__.py").write_text('raise ImportError("the hvtui/ of the current folder")\n')
    (clone / "hvtui" / "__main__.py").write_text("")
    command = tmp_path / "bin" / "hvtui"      # as pip's console script: its own folder first on sys.path
    command.parent.mkdir()
    command.write_text("from hvtui.cli import entry\nentry()\n")
    r = subprocess.run([sys.executable, str(command), "start", "hello", "--memory", "16"], cwd=clone,
                       capture_output=True, timeout=60, env={**os.environ, **ENV})
    assert r.returncode == 0 and r.stdout.startswith(b"hello-1: "), r.stderr
    assert hvtui("kill-server").returncode == 0


async def test_the_client_mirror_keeps_the_wire_order_not_the_awaiting_coroutines(host):
    """The reply to create() and the event that hello ended can be read in one go: the
    coroutine awaiting create() resumes after the event was applied, and the reply's older
    view must not then overwrite it (the TUI that started hello showed it running for
    good). The messages are the monitor's own, from a real hello on KVM, fed to the
    client in the order a daemon sends them."""
    guest = await host.create(api.GuestSpec("hello", name="h", memory_mib=16), start=False)
    created = guest.view()
    await host.start_guest("h")
    await host.wait_until_ended("h")
    ended = host.get("h").view()
    assert ended.state == api.State.STOPPED
    m = RemoteMonitor(Path("/nonexistent"))
    requests = []

    class Socket:
        def write(self, data):
            requests.append(wire.decode(data))
    m.writer = Socket()
    made = asyncio.create_task(m.create(api.GuestSpec("hello", name="h", memory_mib=16)))
    await asyncio.sleep(0)
    assert requests and requests[0]["op"] == "create"
    m._dispatch({"id": requests[0]["id"], "ok": True, "result": api.to_wire(created)})
    m._dispatch({"event": api.to_wire(api.GuestChanged(ended, previous=api.State.RUNNING))})
    assert (await made).state == created.state
    assert m.guest("h").state == api.State.STOPPED and m.guest("h").end.exit_code == 0


def test_another_uid_cannot_connect(serve, tmp_path):
    """A real second user: the 0700 folder keeps it out; and with the folder and socket
    opened up by mistake, SO_PEERCRED still refuses it, with one line."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user")
    user = "hvtuitest"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    pw = pwd.getpwnam(user)
    hvtui("start", "counter", "--name", "c1", "--memory", "16")
    probe = ("import socket, sys\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try:\n"
             "    s.connect(sys.argv[1])\n"
             "except OSError as e:\n"
             "    print('refused:', e.strerror); sys.exit(0)\n"
             "try:\n"
             "    s.sendall(b'{\"id\": 1, \"op\": \"pause\", \"args\": {\"name\": \"c1\"}}\\n')\n"
             "except OSError:\n"
             "    pass\n"
             "print(s.makefile('rb').readline().decode().strip())\n")

    def as_other() -> str:           # the system's Python: the other user cannot read our venv
        r = subprocess.run(["/usr/bin/python3", "-c", probe, str(paths.socket_path())], capture_output=True,
                           text=True, timeout=30, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/")
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    assert as_other() == "refused: Permission denied"
    folder, sock = paths.runtime_dir(), paths.socket_path()
    mode = stat.S_IMODE(folder.parent.stat().st_mode)
    os.chmod(folder.parent, 0o755)
    os.chmod(folder, 0o755)
    os.chmod(sock, 0o666)
    try:
        answer = json.loads(as_other())
    finally:
        os.chmod(folder, 0o700)
        os.chmod(sock, 0o600)
        os.chmod(folder.parent, mode)
    assert answer == {"id": None, "ok": False, "error": {
        "type": "ServerError", "message": f"this monitor belongs to uid 0; you are uid {pw.pw_uid}"}}
    assert hvtui("ls").stdout.splitlines()[1].split()[:2] == [b"c1", b"running"]


def test_a_client_killed_mid_stream_harms_nothing(serve):
    hvtui("start", "counter", "--name", "c1", "--memory", "16")
    hvtui("start", "shell", "--name", "sh", "--memory", "16")
    console = subprocess.Popen([sys.executable, "-m", "hvtui", "console", "c1"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **ENV})
    out = b""
    while len(counts(out)) < 3:
        out += os.read(console.stdout.fileno(), 4096)
    console.send_signal(signal.SIGKILL)
    console.wait()
    before = max(counts(hvtui("logs", "c1").stdout))
    time.sleep(1.0)
    assert max(counts(hvtui("logs", "c1").stdout)) > before
    console = subprocess.Popen([sys.executable, "-m", "hvtui", "console", "sh"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **ENV})
    console.stdin.write(b"echo still here\r")
    console.stdin.flush()
    out = b""
    while b"still here\r\n" not in out:
        out += os.read(console.stdout.fileno(), 4096)
    console.stdin.write(b"\x1d")
    console.stdin.flush()
    assert console.wait(20) == 0
    ls = hvtui("ls").stdout.splitlines()
    assert [line.split()[:2] for line in ls[1:]] == [[b"c1", b"running"], [b"sh", b"running"]]
    assert serve.poll() is None


def test_malformed_and_oversized_requests_get_error_replies(serve):
    hvtui("start", "counter", "--name", "c1", "--memory", "16")
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(paths.socket_path()))
    f = s.makefile("rwb")

    def ask(line: bytes) -> dict:
        f.write(line)
        f.flush()
        return json.loads(f.readline())
    assert ask(b"not json\n") == {"id": None, "ok": False, "error": {
        "type": "WireError", "message": "not JSON: Expecting value: line 1 column 1 (char 0)"}}
    assert ask(b"[1, 2]\n")["error"]["message"] == "a message must be a JSON object"
    assert ask(b'{"op": "list"}\n')["error"]["message"] == "a request needs an integer id"
    assert ask(b'{"id": 1, "op": "__init__"}\n')["error"]["message"] == "unknown op '__init__'"
    assert ask(b'{"id": 2, "op": "pause", "args": {}}\n')["error"]["message"] == "request: missing argument 'name'"
    assert ask(b'{"id": 3, "op": "pause", "args": {"name": 7}}\n')["error"]["message"] == "name: expected str"
    assert ask(b'{"id": 4, "op": "pause", "args": {"name": "ghost"}}\n')["error"] == {
        "type": "ConfigError", "message": "no guest named 'ghost'"}
    bad_spec = ask(b'{"id": 5, "op": "create", "args": {"spec": {"image": "counter", "memory_mib": "x"}}}\n')
    assert bad_spec["error"]["message"] == "spec.memory_mib: expected a whole number"
    assert ask(b'{"id": 6, "op": "input", "args": {"name": "c1", "data": "!!"}}\n')["error"]["message"] == \
        "data: not valid base64"
    assert ask(b'{"id": 7, "op": "list"}\n')["ok"] is True          # the connection goes on
    f.write(b'{"id": 8, "op": "list", "args": {"x": "' + b"a" * (wire.MAX_MESSAGE + 10) + b'"}}\n')
    f.flush()
    reply = json.loads(f.readline())
    assert reply["ok"] is False and "over" in reply["error"]["message"]
    assert f.readline() == b""                                   # and then it is closed
    s.close()
    assert hvtui("ls").stdout.splitlines()[1].split()[:2] == [b"c1", b"running"]


async def test_four_clients_hammering_see_no_errors(serve):
    """Four clients send requests as fast as they can for 10 s (lists, views, console
    histories, pause/resume of their own guest): no errors, every guest counts on."""
    for i in range(4):
        assert hvtui("start", "counter", "--name", f"c{i}", "--memory", "16").returncode == 0
    errors: list[str] = []
    done = {"n": 0}

    async def hammer(i: int) -> None:
        async with RemoteMonitor() as m:
            end = time.monotonic() + 10
            k = 0
            while time.monotonic() < end:
                try:
                    k += 1
                    if k % 50 == 0:
                        await m.pause(f"c{i}")
                        await m.resume(f"c{i}")
                    elif k % 3 == 0:
                        await m.console_history(f"c{(i + 1) % 4}", api.SERIAL, 4096)
                    else:
                        await m._request("list")
                    done["n"] += 1
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
    async with RemoteMonitor() as watcher:
        before = {g.name: g.console_bytes["serial"] for g in watcher.guests()}
        await asyncio.gather(*(hammer(i) for i in range(4)))
        assert errors == [] and done["n"] > 100
        await asyncio.sleep(1)
        for i in range(4):
            history = await watcher.console_history(f"c{i}", api.SERIAL)
            seen = counts(history)
            assert seen == list(range(len(seen))) and len(seen) > 10, f"c{i}"
            assert watcher.view(f"c{i}").console_bytes["serial"] > before[f"c{i}"]
            assert watcher.view(f"c{i}").state == api.State.RUNNING


async def test_events_reach_every_client(serve):
    async with RemoteMonitor() as a, RemoteMonitor() as b:
        seen = {"a": [], "b": []}
        a.subscribe(lambda e: seen["a"].append(e))
        b.subscribe(lambda e: seen["b"].append(e))
        view = await a.create(api.GuestSpec("counter", name="c1", memory_mib=16))
        assert view.state == api.State.RUNNING
        await wait_for(lambda: b.guest("c1") is not None, "b to see c1")
        await b.pause("c1")
        await wait_for(lambda: a.view("c1").state == api.State.PAUSED, "a to see the pause")
        for who in ("a", "b"):
            states = [e.guest.state for e in seen[who] if isinstance(e, api.GuestChanged) and e.guest.name == "c1"]
            assert api.State.PAUSED in states
        await a.kill("c1")
        await wait_for(lambda: b.view("c1").status == "killed", "b to see it killed")
        await b.remove("c1")
        await wait_for(lambda: a.guest("c1") is None, "a to see it removed")


async def test_a_client_that_stops_reading_is_resynchronised(tmp_path, monkeypatch):
    """A client that does not read fills its queue: its events are dropped (the monitor
    and the other clients go on) and, once it reads again, it gets a Resync with every
    guest's view, then events again."""
    from hvtui import server as server_mod
    monkeypatch.setattr(server_mod, "QUEUE_BYTES", 64 * 1024)
    srv = server_mod.Server(socket_path=tmp_path / "s" / "monitor.sock", log_dir=tmp_path / "logs",
                            vcpu_nice=0, sample_interval=0.1)
    assert srv.take_lock()
    await srv.listen()
    try:
        await srv.host.create(api.GuestSpec("counter", name="c1", memory_mib=16))
        slow = socket.socket(socket.AF_UNIX)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(str(srv.socket_path))
        slow.sendall(b'{"id": 1, "op": "hello"}\n')
        async with RemoteMonitor(srv.socket_path) as fast:
            got = []
            fast.subscribe(got.append)
            for i in range(3000):                          # ~3 MB of events: far over 64 KiB
                srv.host.publish(api.Notice("x" * 1000))
                if i % 20 == 0:
                    await asyncio.sleep(0.005)
            assert any(s.behind for s in srv.sessions)
            assert all(s.queued_bytes <= server_mod.QUEUE_BYTES for s in srv.sessions)
            await wait_for(lambda: sum(isinstance(e, api.Notice) for e in got) == 3000, "the fast client's events")
            await srv.host.pause("c1")
            slow.setblocking(False)
            data, resumed = b"", False
            deadline = time.monotonic() + 20
            while b'"kind":"resync"' not in data or b'"previous"' not in data.split(b'"kind":"resync"', 1)[1]:
                assert time.monotonic() < deadline, "no resync came"
                try:
                    data += slow.recv(1 << 16)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                if b'"kind":"resync"' in data and not resumed:
                    resumed = True
                    await srv.host.resume("c1")             # a change after the resync: an event again
            lines = [json.loads(line) for line in data.splitlines() if line.strip()]
            resync = next(m["event"] for m in lines if "event" in m and m["event"]["kind"] == "resync")
            assert resync["dropped"] > 0 and [g["name"] for g in resync["guests"]] == ["c1"]
            assert sum(1 for m in lines if "event" in m and m["event"]["kind"] == "notice") < 3000
        slow.close()
    finally:
        await srv.close()


def test_bench_api_runs():
    """`hvtui bench api` end to end on a small load; its figures are reported, not asserted."""
    r = hvtui("bench", "api", "--guests", "2", "--clients", "2", "--seconds", "1", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["socket"]["error_count"] == 0 and out["socket"]["get"]["n"] > 0 and out["socket"]["event"]["n"] > 0
    assert {"get", "list", "event"} <= set(out["in_process"]) and out["ratio_median"]["get"] is not None


def test_gdb_for_a_guest_of_the_monitor(serve):
    """`hvtui gdb NAME`: the monitor serves gdb for its guest and prints the line to type;
    asked again, it names the same server."""
    hvtui("start", "counter", "--name", "c1", "--memory", "16")
    r = hvtui("gdb", "c1")
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().strip()
    host, port = re.fullmatch(r"target remote (127\.0\.0\.1):(\d+)", line).groups()
    assert hvtui("gdb", "c1").stdout.decode().strip() == line
    with socket.create_connection((host, int(port)), timeout=5):
        pass
    assert json.loads(hvtui("ls", "--json").stdout)[0]["status"] == "running"
    r = hvtui("gdb", "c1", "--address", "nonsense")
    assert r.returncode == 1 and b"expected [HOST:]PORT" in r.stderr


def test_logs_follow_a_guest_across_its_runs(serve):
    hvtui("start", "counter", "--name", "c1", "--memory", "16")
    follow = subprocess.Popen([sys.executable, "-m", "hvtui", "logs", "c1", "-f"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, **ENV})
    try:
        out = b""
        while len(counts(out)) < 3:
            out += os.read(follow.stdout.fileno(), 4096)
        hvtui("kill", "c1")
        hvtui("start", "c1")                           # run 2: logs -f goes on with its log
        while b"[hvtui] c1: run 2" not in out or counts(out.split(b"run 2", 1)[1])[:2] != [0, 1]:
            out += os.read(follow.stdout.fileno(), 4096)
        assert b"killed" in out.split(b"run 2")[0]
    finally:
        follow.kill()
        follow.wait()


def test_too_many_clients_are_refused_in_one_line(serve, monkeypatch):
    from hvtui import server as server_mod
    socks = []
    try:
        for _ in range(server_mod.MAX_CLIENTS):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(paths.socket_path()))
            s.sendall(b'{"id": 1, "op": "list"}\n')
            assert json.loads(s.makefile("rb").readline())["ok"]       # a client the monitor counts
            socks.append(s)
        r = hvtui("ls")
        assert r.returncode == 1 and r.stderr == b"hvtui: the monitor has 64 clients already; close one\n"
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    assert hvtui("ls").returncode == 0


async def test_the_vga_console_of_a_guest_of_the_monitor(serve):
    """A guest that only draws on its VGA screen: the monitor says so, a client reads the
    screen and types on its keyboard through the socket, and `hvtui console --console vga`
    shows it (the final screen as text where stdout is not a terminal)."""
    from hvtui import ps2keys
    hvtui("start", "vgademo", "--name", "v", "--memory", "16")
    async with RemoteMonitor() as m:
        await wait_for(lambda: m.view("v").preferred_console == api.VGA, "the VGA console to be preferred")
        screen = None

        async def ready():
            nonlocal screen
            screen = await m.screen("v")
            return "- ready" in screen.row_text(22)
        deadline = time.monotonic() + 30
        while not await ready():
            assert time.monotonic() < deadline, "the demo did not draw"
            await asyncio.sleep(0.1)
        assert await m.send_keys("v", ps2keys.for_char("x")) == 2        # a make and a break code
        with pytest.raises(api.ConfigError, match="a screen, not a stream"):
            await m.console_history("v", api.VGA)
    r = hvtui("console", "v", "--console", "vga", input=b"\x1d")
    assert r.returncode == 0 and b"- ready" in r.stdout, r.stdout + r.stderr
    assert json.loads(hvtui("ls", "--json").stdout)[0]["preferred_console"] == "vga"
