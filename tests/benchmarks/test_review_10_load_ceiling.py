"""``benchmarks/load_ceiling.py``'s shared reactor writes every frame whole, as ``load.py``'s clients do (their
``send_all`` waits for room): a frame the kernel takes only in part is never counted as sent while its rest is
lost (which would also corrupt every later frame of the connection)."""

import os
import socket
import sys

import trio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import load_ceiling
from load import Window
from load_server import _text_frame


async def test_the_reactor_floor_writes_a_frame_whole_when_the_socket_has_less_room() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        frame = load_ceiling.append(bytes(200_000))  # far more than both buffers
        got = bytearray()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:

                async def take() -> None:  # a server that reads
                    while len(got) < len(frame):
                        await trio.lowlevel.wait_readable(theirs)
                        got.extend(theirs.recv(65536))

                theirs.setblocking(False)
                nursery.start_soon(take)
                assert await load_ceiling.send_nonblocking(ours, frame)
        assert bytes(got) == frame


def test_the_floors_reader_finds_every_delta_stamp_however_the_reads_split_the_frames() -> None:
    window = Window(t0=0, t1=1 << 62)
    dues = [1_000_000_000 + n * 20_000_000 for n in range(40)]
    frames = b"".join(
        _text_frame(b'{"type":"response.output_audio.transcript.delta","event_id":"event_x","delta":"hi"}')
        + _text_frame(
            b'{"type":"response.output_audio.delta","event_id":"event_%010d_%020d","delta":"' % (n, due)
            + b"A" * (200 if n % 2 else 70_000)  # small frames and frames over 64 KiB (the 8-byte length)
            + b'"}'
        )
        for n, due in enumerate(dues)
    )
    for cut in (1000, 4096, 65536, 262144, len(frames)):
        window.lags_out.clear()
        reader = load_ceiling.Reader(window, b"")
        for at in range(0, len(frames), cut):
            reader.feed(frames[at : at + cut])
        assert len(window.lags_out) == len(dues), cut
        assert reader.buf == b""
