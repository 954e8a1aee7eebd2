"""The CPU of rtengine's call creation (WebRTC), in process: no network, no server (an in-memory transport answers
201 with an SDP answer and a ``Location``).

Run: ``python benchmarks/create_cpu.py [--rounds N] [--calls N]``.

As ``benchmarks/accept_cpu.py``, each measure is the best of ``--rounds`` rounds of ``--calls`` calls (warm; GC off
inside a round), in µs of this thread's CPU per call:

* ``bare POST`` — ``httpx.AsyncClient.post`` of the same multipart body (the in-process floor), on a client of its
  own with the same in-memory transport as rtengine's (``RealtimeClient(http_transport=…)``);
* ``calls.create`` — the call seam alone;
* ``open_conversation`` — ``open_conversation(client, session, offer_sdp=…)`` until the block starts (the sideband's
  connect parks: it is not on this path), the leaving of the block not counted.
"""

from __future__ import annotations

import argparse
import time

import httpx
import trio
from accept_cpu import best_cpu

import rtengine
from rtengine.protocol import multipart_body

KEY = "sk-benchmark"
BASE = "http://127.0.0.1:9/v1"
SESSION = rtengine.SessionConfig(instructions="You answer the phone for the benchmark.", voice="marin")
CANDIDATE = "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" + CANDIDATE * 8 + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


class _Answering(httpx.AsyncBaseTransport):
    """Reads the request body chunk by chunk (as httpcore does on a socket), then answers 201 with a new call."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for _ in request.stream:
            pass
        self.calls += 1
        location = f"/v1/realtime/calls/rtc_{self.calls:032x}"
        return httpx.Response(201, headers={"location": location, "content-type": "application/sdp"}, content=SDP)


async def _park(host: str, port: int) -> trio.abc.Stream:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def run(calls: int, rounds: int) -> dict[str, float]:
    http = httpx.AsyncClient(transport=_Answering(), follow_redirects=False)
    async with (
        http,
        rtengine.RealtimeClient(BASE, api_key=KEY, http_transport=_Answering(), open_stream=_park) as client,
    ):
        body = multipart_body(SDP, client.session_json(SESSION))
        headers = {**client.auth_headers(), "content-type": body.content_type}

        async def bare(_: int) -> float:
            start = time.thread_time()
            response = await http.post(f"{BASE}/realtime/calls", content=body.content, headers=headers)
            spent = time.thread_time() - start
            assert response.status_code == 201
            return spent

        async def seam(_: int) -> float:
            start = time.thread_time()
            await client.calls.create(body, client.auth_headers())
            return time.thread_time() - start

        async def block(_: int) -> float:
            start = time.thread_time()
            async with rtengine.open_conversation(client, SESSION, offer_sdp=SDP, hangup=False):
                spent = time.thread_time() - start
            return spent  # noqa: RET504 - the block's exit is not counted

        for one in (bare, seam, block):  # warm every path first
            await best_cpu(50, 1, one)
        return {
            "bare POST": await best_cpu(calls, rounds, bare),
            "calls.create": await best_cpu(calls, rounds, seam),
            "open_conversation": await best_cpu(calls, rounds, block),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per measure; the best counts (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="calls per round (default 300)")
    args = parser.parse_args()
    result = trio.run(run, args.calls, args.rounds)
    floor = result["bare POST"]
    for name, value in result.items():
        print(f"{name:18s} {value:7.1f} µs CPU per call (+{value - floor:.1f} over the bare POST)")


if __name__ == "__main__":
    main()
