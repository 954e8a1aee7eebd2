"""The paced websocket server of ``benchmarks/load.py``: light enough never to be the bottleneck.

Run by ``load.py`` in its own process (``python benchmarks/load_server.py``); stdlib only, one thread, one
``selectors`` loop, no per-connection tasks. It prints ``ws://127.0.0.1:PORT`` and then serves any number of
realtime websocket connections:

* On connect: ``session.created`` (expiring in an hour). On ``session.update``: ``session.updated``,
  ``response.created``, then one ``response.output_audio.delta`` of 20 ms (960 bytes of PCM16 at 24 kHz) every
  20 ms, for as long as the connection lives. The connections are spread over ten 2 ms phases, as independent
  callers would be. Every frame is pre-encoded; only its stamp is written per send: ``event_id`` is
  ``event_<seq>_<CLOCK_MONOTONIC ns at the due time>``, so the client measures the lag from when it was due.
* Every ``input_audio_buffer.append`` is counted in 20 ms frames; each frame's first 8 bytes are the client's
  stamp (CLOCK_MONOTONIC ns when the frame was due), so several frames coalesced into one append are each
  measured: lag = received − due.
* A client that does not read: once more than ``BACKLOG`` frames wait in a connection's output buffer, further
  frames to it are dropped and counted (``out_dropped``) rather than buffered without end.

Commands on stdin (one per line): ``reset T0 T1`` (zero the counters and count only frames due in [T0, T1)
ns; answers ``ok``) and ``report`` (one JSON line: CPU
seconds of this process since the reset, frames in and out, drops, lag percentiles in ms).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import selectors
import socket
import struct
import sys
import time
from typing import Final

#: 20 ms of PCM16 mono 24 kHz.
FRAME_BYTES: Final = 960
PERIOD_NS: Final = 20_000_000
PHASES: Final = 10
#: Frames a connection may have waiting in its output buffer before the next ones are dropped (1 s).
BACKLOG: Final = 50
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STAMP: Final = struct.Struct("<q")


def _text_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


def _event(body: dict[str, object]) -> bytes:
    return _text_frame(json.dumps(body, separators=(",", ":")).encode())


def _session(kind: str) -> bytes:
    return _event(
        {
            "type": f"session.{kind}",
            "event_id": f"event_load_{kind}",
            "session": {
                "type": "realtime",
                "object": "realtime.session",
                "id": "sess_load",
                "model": "gpt-realtime",
                "output_modalities": ["audio"],
                "instructions": "",
                "tools": [],
                "tool_choice": "auto",
                "max_output_tokens": "inf",
                "tracing": None,
                "truncation": "auto",
                "prompt": None,
                "expires_at": int(time.time()) + 3600,
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": None,
                        "noise_reduction": None,
                        "turn_detection": None,
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
                },
                "include": None,
            },
        }
    )


_RESPONSE: Final = {
    "object": "realtime.response",
    "id": "resp_load",
    "status": "in_progress",
    "status_details": None,
    "output": [],
    "conversation_id": "conv_load",
    "output_modalities": ["audio"],
    "max_output_tokens": "inf",
    "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}},
    "usage": None,
    "metadata": None,
}

# The delta, pre-encoded around a fixed-width stamp: ``event_<10-digit seq>_<20-digit ns>``.
_DELTA_HEAD: Final = b'{"type":"response.output_audio.delta","event_id":"event_'
_DELTA_TAIL: Final = (
    b'","response_id":"resp_load","item_id":"item_load","output_index":0,"content_index":0,"delta":"'
    + base64.b64encode(bytes(FRAME_BYTES))
    + b'"}'
)
_DELTA_SIZE: Final = len(_DELTA_HEAD) + 10 + 1 + 20 + len(_DELTA_TAIL)
_DELTA_HEADER: Final = _text_frame(bytes(_DELTA_SIZE))[:-_DELTA_SIZE]


class Conn:
    __slots__ = ("inbuf", "open", "out", "paced", "phase", "seq", "sock", "upgraded")

    def __init__(self, sock: socket.socket, phase: int) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.out = bytearray()
        self.upgraded = False
        self.paced = False
        self.open = True
        self.seq = 0
        self.phase = phase


class Server:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
        self.phases: list[list[Conn]] = [[] for _ in range(PHASES)]
        self.accepted = 0
        self.reset()

    def reset(self, t0: int = 0, t1: int = 1 << 62) -> None:
        self.t0, self.t1 = t0, t1
        self.cpu0 = time.process_time()
        self.wall0 = time.monotonic()
        self.frames_in = 0
        self.appends_in = 0
        self.frames_out = 0
        self.out_dropped = 0
        self.lags: list[int] = []

    def report(self) -> dict[str, object]:
        cpu = time.process_time() - self.cpu0
        wall = time.monotonic() - self.wall0
        lags = sorted(self.lags)

        def pct(p: float) -> float | None:
            return lags[min(len(lags) - 1, int(p * len(lags)))] / 1e6 if lags else None

        conns = sum(len(phase) for phase in self.phases)
        return {
            "cpu_s": cpu,
            "wall_s": wall,
            "conns": conns,
            "frames_in": self.frames_in,
            "appends_in": self.appends_in,
            "frames_out": self.frames_out,
            "out_dropped": self.out_dropped,
            "lag_in_p50_ms": pct(0.5),
            "lag_in_p99_ms": pct(0.99),
            "lag_in_max_ms": lags[-1] / 1e6 if lags else None,
        }

    def run(self) -> None:
        port = self.listener.getsockname()[1]
        print(f"ws://127.0.0.1:{port}", flush=True)
        next_tick = time.monotonic_ns()
        tick = 0
        while True:
            timeout = max(0.0, (next_tick - time.monotonic_ns()) / 1e9)
            for key, _ in self.sel.select(timeout):
                if key.data is None:
                    self.accept()
                elif key.data == "stdin":
                    if not self.command():
                        return
                else:
                    self.readable(key.data)
            now = time.monotonic_ns()
            while now >= next_tick:
                self.pace(self.phases[tick % PHASES], next_tick)
                tick += 1
                next_tick += PERIOD_NS // PHASES

    def command(self) -> bool:
        line = sys.stdin.readline()
        if not line:
            return False
        what = line.strip()
        if what.startswith("reset"):
            self.reset(*(int(word) for word in what.split()[1:]))
            print("ok", flush=True)
        elif what == "report":
            print(json.dumps(self.report()), flush=True)
        return True

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Conn(sock, self.accepted % PHASES)
            self.accepted += 1
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def close(self, conn: Conn) -> None:
        if not conn.open:
            return
        conn.open = False
        if conn.paced:
            self.phases[conn.phase].remove(conn)
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        conn.inbuf += data
        if not conn.upgraded:
            end = conn.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgrade(conn, bytes(conn.inbuf[:end]))
            del conn.inbuf[: end + 4]
        self.frames(conn)

    def upgrade(self, conn: Conn, request: bytes) -> None:
        key = b""
        for line in request.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.send(
            conn,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + _session("created"),
        )
        conn.upgraded = True

    def frames(self, conn: Conn) -> None:
        buf = conn.inbuf
        while conn.open and len(buf) >= 2:
            opcode, size = buf[0] & 0x0F, buf[1] & 0x7F
            at = 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, at = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, at = int.from_bytes(buf[2:10], "big"), 10
            masked = buf[1] & 0x80
            if len(buf) < at + (4 if masked else 0) + size:
                return
            payload = bytes(buf[at + 4 : at + 4 + size]) if masked else bytes(buf[at : at + size])
            if masked:
                mask = bytes(buf[at : at + 4])
                key = int.from_bytes((mask * (size // 4 + 1))[:size], "little")
                payload = (int.from_bytes(payload, "little") ^ key).to_bytes(size, "little")
                at += 4
            del buf[: at + size]
            if opcode == 0x8:  # CLOSE: answer it, then end
                self.send(conn, bytes((0x88, 2)) + (1000).to_bytes(2, "big"))
                self.close(conn)
                return
            if opcode == 0x9:  # PING
                self.send(conn, bytes((0x8A, len(payload))) + payload)
            elif opcode == 0x1:
                self.message(conn, payload)

    def message(self, conn: Conn, payload: bytes) -> None:
        if b'"input_audio_buffer.append"' in payload:
            start = payload.index(b'"', payload.index(b'"audio"') + 7) + 1
            end = payload.index(b'"', start)
            now = time.monotonic_ns()
            chunk = (FRAME_BYTES // 3) * 4
            appended = False
            for at in range(start, end, chunk):
                (due,) = _STAMP.unpack(base64.b64decode(payload[at : at + 12])[:8])
                if self.t0 <= due < self.t1:
                    self.lags.append(now - due)
                    self.frames_in += 1
                    appended = True
            self.appends_in += appended
        elif b'"session.update"' in payload and not conn.paced:
            self.send(conn, _session("updated"))
            self.send(conn, _event({"type": "response.created", "event_id": "event_load_rc", "response": _RESPONSE}))
            conn.paced = True
            self.phases[conn.phase].append(conn)

    def pace(self, conns: list[Conn], due: int) -> None:
        stamp = b"%020d" % due
        counted = self.t0 <= due < self.t1
        for conn in list(conns):
            if len(conn.out) > BACKLOG * (_DELTA_SIZE + len(_DELTA_HEADER)):
                self.out_dropped += counted
                continue
            conn.seq += 1
            self.frames_out += counted
            self.send(conn, _DELTA_HEADER + _DELTA_HEAD + b"%010d_" % conn.seq + stamp + _DELTA_TAIL)

    def send(self, conn: Conn, data: bytes) -> None:
        if not conn.open:
            return
        if conn.out:
            conn.out += data
            data = bytes(conn.out)
            conn.out.clear()
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close(conn)
            return
        if sent < len(data):
            conn.out += data[sent:]


def main() -> None:
    os.environ.setdefault("PYTHONHASHSEED", "0")
    Server().run()


if __name__ == "__main__":
    main()
