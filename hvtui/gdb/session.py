"""One gdb client of one guest: reads its packets, answers each command, runs and stops
the guest for it, and lets the guest run on when it leaves.

All-stop: when one vCPU stops (a breakpoint, a step, Ctrl-C) every vCPU is held before
gdb hears of it, and the stop reply names the vCPU's thread (vCPU i is thread i + 1).
Blocking waits (vCPUs parking) run in threads, so the Host's loop and the other guests
never wait on this one. Client bytes go through a bounded queue; a malformed or
oversized packet gets an error reply and touches nothing.
"""
from __future__ import annotations

import asyncio
import contextlib

from hvtui.errors import GuestMemoryError, HvError, StateError
from hvtui.gdb import monitor
from hvtui.gdb.packets import (BAD_CHECKSUM, INTERRUPTED, MAX_PACKET, PACKET, TOO_LONG, PacketReader,
                               ProtocolError, frame, hex_bytes, hex_int, parse_breakpoint, parse_span,
                               parse_vcont, thread_id)
from hvtui.gdb.target import BY_NAME, REGISTERS, TARGET_XML, RegisterFile, thread_description
from hvtui.vmm.debug import DebugRefused, StopEvent
from hvtui.vmm.machine import State

QUEUE = 64               # client events waiting to be handled
EOF = "eof"
READ_CHUNK = 4096
STOP_WAIT_S = 5.0
SIGINT, SIGTRAP, SIGKILL, SIGSEGV = 2, 5, 9, 11
MAX_MEMORY = (MAX_PACKET - 8) // 2          # bytes one m reply carries


class Session:
    def __init__(self, server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.machine = server.machine
        self.debug = server.debug
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.features: set[str] = set()
        self.no_ack = False
        self.g_thread = 1
        self.c_thread = -1
        self.running = False
        self.ended = False          # the guest ended and gdb was told (W, X)
        self.last_stop = StopEvent(0, "initial")
        self.regfiles: dict[int, RegisterFile] = {}
        self._events: asyncio.Queue = asyncio.Queue(maxsize=QUEUE)
        self._stopped = asyncio.Event()
        self._told = asyncio.Event()         # gdb has heard of the last stop or end
        self._told.set()
        self._loop = asyncio.get_running_loop()
        self._closed = False

    # ---- the connection ----
    async def run(self) -> None:
        self.debug.attach()
        reader = asyncio.create_task(self._read())
        try:
            self.debug.listener = self._notify_stop
            await asyncio.to_thread(self.debug.stop)       # the guest stops for its debugger
            event = self.debug.take_event()
            if event is not None:
                self.last_stop = StopEvent(event.vcpu, "initial")
            self._emit(attached=self.peer)
            await self._serve()
        except (ConnectionError, OSError):
            pass
        finally:
            reader.cancel()
            await self._leave()

    async def _serve(self) -> None:
        while not self._closed:
            if self.running:
                get = asyncio.ensure_future(self._events.get())
                stop = asyncio.ensure_future(self._stopped.wait())
                done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    await self._report_stop()
                else:
                    stop.cancel()
                if get in done:
                    item = get.result()
                else:
                    get.cancel()
                    continue
            else:
                item = await self._events.get()
            kind, payload = item
            if kind == EOF:
                return
            await self._event(kind, payload)

    async def _read(self) -> None:
        parser = PacketReader()
        try:
            while True:
                chunk = await self.reader.read(READ_CHUNK)
                if not chunk:
                    break
                for kind, payload in parser.feed(chunk):
                    if kind in (PACKET, BAD_CHECKSUM, TOO_LONG, INTERRUPTED):
                        await self._events.put((kind, payload))   # bounded: a flood waits here
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                await self._events.put((EOF, b""))      # never dropped: the guest must be let go

    async def _send(self, payload: bytes) -> None:
        self.writer.write(frame(payload))
        await self.writer.drain()

    def _ack(self, ok: bool = True) -> None:
        if not self.no_ack:
            self.writer.write(b"+" if ok else b"-")

    async def close(self) -> None:
        """End the connection from the monitor's side (the guest was removed, hvtui quits),
        once gdb has heard how the guest ended."""
        if not self.machine.state.live:
            self._stopped.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._told.wait(), STOP_WAIT_S)
        self._closed = True
        with contextlib.suppress(Exception):
            self._events.put_nowait((EOF, b""))
        with contextlib.suppress(Exception):
            self.writer.close()

    async def _leave(self) -> None:
        """The client left (or was sent away): the guest runs on without a debugger."""
        self._closed = True
        self.debug.listener = None
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.debug.detach)
        with contextlib.suppress(Exception):
            self.writer.close()
        self._emit(detached=self.peer)

    def _emit(self, **info) -> None:
        self.machine._emit("debug", **info)

    # ---- stops ----
    def _notify_stop(self) -> None:
        """From a vCPU thread: a stop is ready."""
        with contextlib.suppress(RuntimeError):       # the loop is gone: nobody to tell
            self._loop.call_soon_threadsafe(self._stopped.set)

    def machine_ended(self) -> None:
        """From the Host's events: the guest stopped or crashed."""
        self._stopped.set()

    async def _report_stop(self) -> None:
        self._stopped.clear()
        if not self.running:
            return
        try:
            await self._tell_stop()
        finally:
            if not self.running:
                self._told.set()

    async def _tell_stop(self) -> None:
        m = self.machine
        if not m.state.live:
            await asyncio.to_thread(m.join, STOP_WAIT_S)
            self.running = False
            if m.state == State.CRASHED and m.crash is not None and m.vm is not None:
                # stopped where it crashed, for a look at its registers and memory
                await self._console(f"hvtui: {m.name} crashed: {m.crash.summary()}\n")
                self.last_stop = StopEvent(m.crash.vcpu, "crash")
                self.g_thread = m.crash.vcpu + 1
                await self._send(self._stop_reply(self.last_stop))
                return
            await self._send(self._exit_reply())
            return
        await asyncio.to_thread(m.wait_held, STOP_WAIT_S)
        event = self.debug.take_event()
        if event is None:       # a spurious wake-up: keep running
            return
        self.running = False
        self.last_stop = event
        self.g_thread = event.vcpu + 1
        self._emit(stopped=f"vCPU {event.vcpu}: {event.reason}" + (f" at {event.addr:#x}" if event.addr else ""))
        await self._send(self._stop_reply(event))

    def _stop_reply(self, event: StopEvent) -> bytes:
        sig = {"interrupt": SIGINT, "crash": SIGSEGV}.get(event.reason, SIGTRAP)
        reply = f"T{sig:02x}thread:{event.vcpu + 1:x};"
        if event.reason == "breakpoint":
            kind = "swbreak" if event.kind == "sw" else "hwbreak"
            if f"{kind}+" in self.features:
                reply += f"{kind}:;"
        elif event.reason == "watch":
            reply += f"{'watch' if event.kind == 'write' else 'awatch'}:{event.addr:x};"
        return reply.encode()

    def _status(self) -> bytes:
        """The answer to `?`: the last stop, or how the guest ended (a crash stays
        inspectable: stopped with SIGSEGV on the vCPU that crashed)."""
        m = self.machine
        if self.ended or (not m.state.live and m.state != State.CRASHED):
            return self._exit_reply()
        if m.state == State.CRASHED and self.last_stop.reason != "crash":
            self.last_stop = StopEvent(m.crash.vcpu if m.crash else 0, "crash")
            self.g_thread = self.last_stop.vcpu + 1
        return self._stop_reply(self.last_stop)

    def _exit_reply(self) -> bytes:
        """What gdb hears when the guest has ended: W (exit status), or X (a signal)."""
        m = self.machine
        self.ended = True
        if m.state == State.CRASHED:
            return f"X{SIGSEGV:02x}".encode()
        if m.exit_code is not None:
            return f"W{m.exit_status:02x}".encode()
        return f"X{SIGKILL:02x}".encode() if m.stop_reason == "killed" else b"W00"

    # ---- packets ----
    async def _event(self, kind: str, payload: bytes) -> None:
        if kind == INTERRUPTED:
            if self.running:
                await asyncio.to_thread(self.debug.stop, self.g_thread - 1)
                self._stopped.set()
            return
        if kind == BAD_CHECKSUM:
            if self.no_ack:
                await self._send(self._error("bad packet checksum"))
            else:
                self._ack(False)
            return
        self._ack(True)
        if kind == TOO_LONG:
            await self._send(self._error(f"packet longer than {MAX_PACKET} bytes"))
            return
        if self.running:
            await self._send(self._error("the guest is running (interrupt it first)"))
            return
        try:
            reply = await self._command(payload)
        except ProtocolError as e:
            reply = self._error(str(e))
        except DebugRefused as e:
            reply = self._error(str(e), text=payload[:1] in (b"Z", b"z"))
        except (HvError, ValueError, IndexError) as e:
            reply = self._error(str(e))
        except Exception as e:     # a bug answering one packet must not end the session
            reply = self._error(f"{type(e).__name__}: {e}")
        if reply is not None:
            await self._send(reply)
        if payload.startswith(b"QStartNoAckMode"):
            self.no_ack = True

    def _error(self, message: str, text: bool = False) -> bytes:
        """E01, or the message where the client shows it: to a client that takes textual
        errors (error-message+ in its qSupported, gdb after 13), or a Z reply of the form
        E.hvtui.<message>, which gdb 13 prints for hardware breakpoints."""
        message = message.replace("\n", " ")[:200]
        if self.features & {"error-message+", "error_message+"}:
            return b"E." + message.encode(errors="replace")
        if text:
            return b"E.hvtui." + message.encode(errors="replace")
        return b"E01"

    async def _command(self, pkt: bytes) -> bytes | None:
        if not pkt:
            return b""
        c, body = pkt[:1], pkt[1:]
        if c in (b"q", b"Q"):
            return await self._query(pkt)
        if c == b"?":
            return self._status()
        if c == b"v":
            return await self._v(pkt)
        if c == b"H":
            return self._select_thread(body)
        if c == b"T":
            t = thread_id(body)
            return b"OK" if 1 <= t <= len(self.machine.vcpus) else b"E01"
        if c == b"D":
            await self._send(b"OK")
            self._closed = True
            return None
        if c == b"k":
            await self._kill()
            return None
        if c in (b"c", b"s", b"C", b"S"):
            return await self._legacy_resume(c, body)
        if c == b"Z" or c == b"z":
            return self._breakpoint(c == b"Z", body)
        if self.ended:
            return self._error("the guest has ended")
        if c == b"g":
            return self._regfile(self._vcpu_of(self.g_thread)).all().hex().encode()
        if c == b"G":
            return self._write_all(body)
        if c == b"p":
            num = hex_int(body, len(REGISTERS))
            return self._regfile(self._vcpu_of(self.g_thread)).get(num).hex().encode()
        if c == b"P":
            num, _, value = body.partition(b"=")
            regs = self._regfile(self._vcpu_of(self.g_thread))
            regs.set(hex_int(num, len(REGISTERS)), hex_bytes(value))
            regs.flush()
            return b"OK"
        if c == b"m":
            return self._read_memory(body)
        if c == b"M":
            return self._write_memory(body)
        return b""           # X, ! and the rest: not supported (gdb falls back or says so)

    # ---- queries ----
    async def _query(self, pkt: bytes) -> bytes:
        name, _, args = pkt.partition(b":")
        if name == b"qSupported":
            self.features = {f.decode("ascii", "replace") for f in args.split(b";") if f}
            ours = [f"PacketSize={MAX_PACKET:x}", "qXfer:features:read+", "vContSupported+",
                    "QStartNoAckMode+"] + [f for f in ("swbreak+", "hwbreak+") if f in self.features]
            return ";".join(ours).encode()
        if name == b"qXfer" and args.startswith(b"features:read:"):
            return self._xfer_features(args[len(b"features:read:"):])
        if name == b"QStartNoAckMode":
            return b"OK"
        if name == b"qAttached":
            return b"1"                              # gdb detaches, never kills, when it quits
        if name == b"qC":
            return b"QC%x" % self.g_thread if self.g_thread > 0 else b"QC1"
        if name == b"qfThreadInfo":
            return b"m" + b",".join(b"%x" % (v.index + 1) for v in self.machine.vcpus)
        if name == b"qsThreadInfo":
            return b"l"
        if pkt.startswith(b"qThreadExtraInfo,"):
            index = self._vcpu_of(thread_id(pkt[len(b"qThreadExtraInfo,"):]))
            text = f"vCPU {index}"
            if self.can_touch_vcpus():
                text = thread_description(self.machine.vcpus[index])
            return text.encode().hex().encode()
        if pkt.startswith(b"qRcmd,"):
            text = monitor.run(self, hex_bytes(pkt[len(b"qRcmd,"):]).decode(errors="replace"))
            data = text.encode()
            for i in range(0, len(data), MAX_MEMORY):
                await self._send(b"O" + data[i:i + MAX_MEMORY].hex().encode())
            return b"OK"
        if name == b"qSymbol":
            return b"OK"
        return b""

    def _xfer_features(self, args: bytes) -> bytes:
        annex, _, span = args.partition(b":")
        if annex != b"target.xml":
            return self._error(f"no target description named {annex[:40]!r}")
        off, _, length = span.partition(b",")
        offset, size = hex_int(off), min(hex_int(length), MAX_MEMORY)
        chunk = TARGET_XML[offset:offset + size]
        return (b"m" if offset + size < len(TARGET_XML) else b"l") + chunk

    # ---- threads, registers, memory ----
    def _select_thread(self, body: bytes) -> bytes:
        which, t = body[:1], thread_id(body[1:])
        if t > len(self.machine.vcpus):
            raise ProtocolError(f"no thread {t:x}")
        if which == b"g":
            self.g_thread = t if t > 0 else 1
        elif which == b"c":
            self.c_thread = t
        else:
            raise ProtocolError("H takes g or c")
        return b"OK"

    def _vcpu_of(self, thread: int) -> int:
        if thread <= 0:
            return 0
        if thread > len(self.machine.vcpus):
            raise ProtocolError(f"no thread {thread:x}")
        return thread - 1

    def can_touch_vcpus(self) -> bool:
        """The vCPUs are outside KVM_RUN: held by us, or their guest has ended."""
        m = self.machine
        if m.vm is None or not m.vcpus:
            return False
        if not m.state.live:
            return m.join(0)
        return m.debug_stopped

    def _regfile(self, index: int) -> RegisterFile:
        if not self.can_touch_vcpus():
            raise StateError(f"{self.machine.name}'s vCPUs are not stopped")
        regs = self.regfiles.get(index)
        if regs is None:
            regs = self.regfiles[index] = RegisterFile(self.machine.vcpus[index])
        return regs

    def _write_all(self, body: bytes) -> bytes:
        data = hex_bytes(body)
        regs = self._regfile(self._vcpu_of(self.g_thread))
        offset = 0
        for num, r in enumerate(REGISTERS):
            size = r.bits // 8
            if offset + size > len(data):
                break
            regs.set(num, data[offset:offset + size])
            offset += size
        regs.flush()
        return b"OK"

    def _read_memory(self, body: bytes) -> bytes:
        addr, length = parse_span(body)
        if not self.can_touch_vcpus():
            raise StateError("the guest is running")
        data = self.debug.read_memory(addr, min(length, MAX_MEMORY), self._vcpu_of(self.g_thread))
        if length and not data:
            return b"E14"           # EFAULT: gdb says "Cannot access memory at address ..."
        return data.hex().encode()

    def _write_memory(self, body: bytes) -> bytes:
        span, sep, hexdata = body.partition(b":")
        addr, length = parse_span(span)
        data = hex_bytes(hexdata)
        if not sep or len(data) != length:
            raise ProtocolError("M: the data does not match its length")
        if not self.can_touch_vcpus():
            raise StateError("the guest is running")
        try:
            self.debug.write_memory(addr, data, self._vcpu_of(self.g_thread))
        except GuestMemoryError:
            return b"E14"
        return b"OK"

    # ---- breakpoints ----
    def _breakpoint(self, insert: bool, body: bytes) -> bytes:
        ztype, addr, length = parse_breakpoint(body)
        if self.ended:
            return self._error("the guest has ended")
        if insert:
            self.debug.insert(ztype, addr, length, self._vcpu_of(self.g_thread))
        else:
            self.debug.remove(ztype, addr, length)
        return b"OK"

    # ---- running ----
    async def _v(self, pkt: bytes) -> bytes | None:
        if pkt == b"vCont?":
            return b"vCont;c;C;s;S"
        if pkt.startswith(b"vCont;"):
            return await self._resume(parse_vcont(pkt[len(b"vCont;"):], len(self.machine.vcpus)))
        if pkt.startswith(b"vKill"):
            await self._kill()
            return b"OK"
        return b""

    async def _legacy_resume(self, c: bytes, body: bytes) -> bytes | None:
        if c in (b"C", b"S"):
            sig, _, body = body.partition(b";")
            hex_int(sig, 256)
        if c in (b"c", b"C"):
            actions = {i: "c" for i in range(len(self.machine.vcpus))}
        else:
            thread = self.c_thread if self.c_thread > 0 else self.last_stop.vcpu + 1
            actions = {self._vcpu_of(thread): "s"}
        if body:         # resume at an address
            rip = hex_int(body)
            for i in actions:
                regs = self._regfile(i)
                regs.set(BY_NAME["rip"], rip.to_bytes(8, "little"))
                regs.flush()
        return await self._resume(actions)

    async def _resume(self, actions: dict[int, str]) -> bytes | None:
        if self.ended:
            return self._exit_reply()
        if not self.machine.state.live:
            return self._exit_reply()
        caps = self.debug.caps
        if not caps.user_mode and self.can_touch_vcpus():
            for i, action in actions.items():
                if self.machine.vcpus[i].get_sregs().cs.dpl == 0:
                    continue
                if action == "s":
                    await self._console(f"hvtui: cannot single-step vCPU {i}: it runs at CPL 3, and this "
                                        f"host's KVM ({caps.host}) only steps CPL-0 code\n")
                    return b"E01"
                if self.debug.breakpoints:
                    await self._console(f"hvtui: note: vCPU {i} runs at CPL 3, where this host's KVM "
                                        f"({caps.host}) does not stop on breakpoints\n")
        self.regfiles.clear()
        self._stopped.clear()
        self._told.clear()
        try:
            self.debug.resume(actions)
        except DebugRefused as e:
            self._told.set()
            await self._console(f"hvtui: {e}\n")
            return b"E01"
        self.running = True
        self._emit(running=True)
        return None

    async def _console(self, text: str) -> None:
        """Text gdb prints while it waits for a stop (O packets)."""
        await self._send(b"O" + text.encode().hex().encode())

    async def _kill(self) -> None:
        m = self.machine
        if m.state.live:
            await asyncio.to_thread(m.stop, "killed by the debugger")
        self.ended = True
        self._closed = True
