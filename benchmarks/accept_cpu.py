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

Then ``open_conversation`` by stage (medians over every call of every round, the accept seam's entry, its body being
out and its return marked on the way): *before the accept* (the block's start up to the seam), *the accept until its
body is out* (the request built and written: the in-memory transport's share is small), *built in flight* (the
conversation and its runner's jobs, made while the accept is on the wire), *the accept after its body* (the answer
read, the connection back in the pool) and *after the answer* (up to the block's first line).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

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


async def best_cpu(calls: int, rounds: int, one: Callable[[int], Awaitable[float]]) -> float:
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


STAGES = (
    "before the accept",
    "the accept until its body is out",
    "built in flight",
    "the accept after its body",
    "after the answer",
)


class _Timed:
    """``client.calls`` with the accept's entry, its body being out (before and after ``on_sent``) and its return
    marked (``time.thread_time``); everything else passed through."""

    def __init__(self, calls: Any) -> None:
        self._calls = calls
        self.marks: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._calls, name)

    async def accept(
        self,
        call_id: str,
        session: rtengine.SessionConfig,
        headers: Mapping[str, str] | None = None,
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        marks = self.marks
        marks["in"] = time.thread_time()

        def sent() -> None:
            marks["sent"] = time.thread_time()
            if on_sent is not None:
                on_sent()
            marks["built"] = time.thread_time()

        await self._calls.accept(call_id, session, headers, on_sent=sent)
        marks["out"] = time.thread_time()


async def stages(client: rtengine.RealtimeClient, calls: int, rounds: int) -> dict[str, float]:
    """The median µs of each of :data:`STAGES` over ``rounds * calls`` accepts (GC off inside a round)."""
    timed = _Timed(client.calls)
    setattr(client, "calls", timed)  # noqa: B010 - the benchmark's own marks around the seam
    spans: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for r in range(rounds):
        gc.collect()
        gc.disable()
        try:
            for i in range(calls):
                start = time.thread_time()
                call_id = f"rtc_{(rounds + r) * calls + i:032x}"
                async with rtengine.open_conversation(client, SESSION, accept_call_id=call_id):
                    first_line = time.thread_time()
                marks = timed.marks
                points = (start, marks["in"], marks["sent"], marks["built"], marks["out"], first_line)
                for stage, begin, end in zip(STAGES, points, points[1:], strict=False):
                    spans[stage].append((end - begin) * 1e6)
        finally:
            gc.enable()
    setattr(client, "calls", timed._calls)  # noqa: B010
    return {stage: statistics.median(values) for stage, values in spans.items()}


async def run(calls: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
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
            await best_cpu(50, 1, one)
        totals = {
            "bare POST": await best_cpu(calls, rounds, bare),
            "calls.accept": await best_cpu(calls, rounds, seam),
            "open_conversation": await best_cpu(calls, rounds, block),
        }
        return totals, await stages(client, calls, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per measure; the best counts (default 7)")
    parser.add_argument("--calls", type=int, default=300, help="calls per round (default 300)")
    args = parser.parse_args()
    result, by_stage = trio.run(run, args.calls, args.rounds)
    floor = result["bare POST"]
    for name, value in result.items():
        print(f"{name:18s} {value:7.1f} µs CPU per call (+{value - floor:.1f} over the bare POST)")
    print("open_conversation by stage (median µs CPU per call):")
    for stage, value in by_stage.items():
        print(f"  {stage:34s} {value:7.1f}")


if __name__ == "__main__":
    main()
