"""The CPU of rtengine's accept path, in process: no network, no server (an in-memory transport answers 200).

Run: ``python benchmarks/accept_cpu.py [--rounds N] [--calls N]``.

Three measures, each the best of ``--rounds`` rounds of ``--calls`` calls (warm; GC off inside a round), in µs per
call of this thread's CPU (``time.thread_time``: the load of a shared machine does not reach it):

* ``bare POST`` — ``httpx.AsyncClient.post`` of the accept's JSON body (the in-process floor), on a client of its
  own with the same in-memory transport as rtengine's (``RealtimeClient(http_transport=…)``);
* ``calls.accept`` — ``client.calls.accept(call_id, session)``: the accept seam alone;
* ``open_conversation`` — ``open_conversation(client, session, accept_call_id=…)`` until the block starts (the
  sideband's connect parks: it is not on this path), the leaving of the block not counted. The transport reads the
  request body as a real one does, so the conversation is built when the body is out — on a real network that is
  while the accept is in flight, off the time to accept; here, with no flight, it is counted.

The difference between the last and the first is what rtengine adds to a phone call's time to accept, less the
loopback and the server; ``benchmarks/time_to_accept.py`` measures the whole against a real local server.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable

import httpx
import trio

import rtengine

KEY = "sk-benchmark"
BASE = "http://127.0.0.1:9/v1"
SESSION = rtengine.SessionConfig(instructions="You answer the phone for the benchmark.", voice="marin")


class _Answering(httpx.AsyncBaseTransport):
    """Reads the request body chunk by chunk (as httpcore does on a socket), then answers 200."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for _ in request.stream:
            pass
        return httpx.Response(200)


async def _park(host: str, port: int) -> trio.abc.Stream:
    await trio.sleep_forever()
    raise AssertionError("unreachable")


async def _best(calls: int, rounds: int, one: Callable[[int], Awaitable[float]]) -> float:
    """The best round's mean CPU per call, in µs (``one(i)`` returns the CPU seconds it wants counted)."""
    best = float("inf")
    for r in range(rounds):
        gc.collect()
        gc.disable()
        try:
            spent = 0.0
            for i in range(calls):
                spent += await one(r * calls + i)
        finally:
            gc.enable()
        best = min(best, spent / calls * 1e6)
    return best


async def run(calls: int, rounds: int) -> dict[str, float]:
    http = httpx.AsyncClient(transport=_Answering(), follow_redirects=False)
    async with (
        http,
        rtengine.RealtimeClient(BASE, api_key=KEY, http_transport=_Answering(), open_stream=_park) as client,
    ):
        body = client.session_json(SESSION).encode()
        headers = {**client.auth_headers(), "content-type": "application/json"}

        async def bare(i: int) -> float:
            start = time.thread_time()
            response = await http.post(f"{BASE}/realtime/calls/rtc_{i:032x}/accept", content=body, headers=headers)
            spent = time.thread_time() - start
            assert response.status_code == 200
            return spent

        async def seam(i: int) -> float:
            start = time.thread_time()
            await client.calls.accept(f"rtc_{i:032x}", SESSION)
            return time.thread_time() - start

        async def block(i: int) -> float:
            start = time.thread_time()
            async with rtengine.open_conversation(client, SESSION, accept_call_id=f"rtc_{i:032x}"):
                spent = time.thread_time() - start
            return spent  # noqa: RET504 - the block's exit (the hang-up) is not counted

        for one in (bare, seam, block):  # warm every path first
            await _best(50, 1, one)
        return {
            "bare POST": await _best(calls, rounds, bare),
            "calls.accept": await _best(calls, rounds, seam),
            "open_conversation": await _best(calls, rounds, block),
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
