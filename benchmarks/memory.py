"""What a conversation costs in memory, and that nothing stays behind when it ends.

Run: ``python benchmarks/memory.py [--quick] [--json PATH]``. The local realtime server runs as ``rtengine serve`` in
its own process (so only the client's allocations are counted), reached over loopback; the client's allocations are
traced with ``tracemalloc`` (Python objects and buffers; not the kernel's socket buffers). The measurements:

* ``joined`` — N WebRTC conversations (background sideband) held open at once after their sideband joined and
  ``session.updated`` arrived: traced bytes per conversation (channels, scopes, state, websocket, TCP stream).
* ``websocket`` — N plain websocket conversations held open at once after ``session.updated`` arrived (the app
  holding no event): traced bytes per conversation.
* ``bare`` — the baseline, measured in the same run against the same server: N bare trio-websocket connections
  (the library's defaults) that sent ``session.update`` and read up to ``session.updated``, held open at once.
  The goal (#14): ``joined`` and ``websocket`` ≤ 1.5 × ``bare``.
* ``queued`` — N conversations whose sideband join is held back by the server, each with full input buffers
  (64 texts of 100 characters, 256 audio frames of 20 ms PCM16 = 960 bytes): bytes per conversation beside the
  payload it holds (≈252 KB). The buffers hold references to the caller's objects, nothing more.
* ``retained`` — after M conversations as a warm-up (bounded caches fill: httpx's and ``re``'s; the standard
  library's ``urlsplit`` cache, which keeps the last 128 distinct URLs, is cleared before each reading), M more
  conversations opened, joined and closed one after another: traced bytes still allocated after they ended (after a
  full collection), per conversation. A leak shows as a constant per conversation; what is left here shrinks per
  conversation as M grows (≈150 B at M=30, ≈110 B at M=300, ≈40 B at M=1000: allocator and cache residue).
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import tracemalloc
import urllib.parse

import trio
import trio_websocket
from time_to_answer import KEY, serve, without_candidates

import rtengine
from rtengine.adapters._peer import open_peer_service
from rtengine.events import SessionUpdated

SESSION = rtengine.SessionConfig(instructions="benchmark")
TEXT = "x" * 100
FRAME = bytes(960)  # 20 ms of PCM16 mono 24 kHz


def clear_url_cache() -> None:
    """Empty the standard library's bounded ``urlsplit`` cache (``urllib.parse.clear_cache``, not in the stubs)."""
    clear = getattr(urllib.parse, "clear_cache", None)
    if clear is not None:
        clear()


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def joined(conv: rtengine.Conversation) -> None:
    async for event in conv.events:
        if isinstance(event, SessionUpdated):
            return
    raise RuntimeError("the conversation ended before session.updated")


async def hold_plain(client: rtengine.RealtimeClient, count: int, *, bare: bool) -> int:
    """``count`` plain websocket conversations (or bare trio-websocket connections) held at once after
    ``session.updated``: the traced bytes per connection."""
    before = traced()
    ready = trio.Semaphore(0)
    release = trio.Event()
    url = client.realtime_base_url.replace("http", "ws", 1) + "/realtime?model=gpt-realtime"
    update = json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "benchmark"}})

    async def conversation() -> None:
        async with rtengine.open_conversation(client, SESSION) as conv:
            await joined(conv)
            ready.release()
            await release.wait()

    async def connection() -> None:
        headers = [(b"authorization", f"Bearer {KEY}".encode())]
        async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
            await ws.send_message(update)
            while json.loads(await ws.get_message())["type"] != "session.updated":
                pass
            ready.release()
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(connection if bare else conversation)
        for _ in range(count):
            await ready.acquire()
        measured = traced() - before
        release.set()
    return measured // count


async def hold(client: rtengine.RealtimeClient, offer: str, count: int, *, fill: bool) -> int:
    """Open ``count`` conversations at once, measure the traced bytes while all are held, then close them."""
    before = traced()
    ready = trio.Semaphore(0)
    release = trio.Event()
    measured = 0

    async def one() -> None:
        async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
            if fill:
                for _ in range(64):
                    await conv.send_text(TEXT)
                for _ in range(256):
                    conv.send_audio(FRAME)
            else:
                await joined(conv)
            ready.release()
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
        for _ in range(count):
            await ready.acquire()
        measured = traced() - before
        release.set()
    return measured // count


async def retained(client: rtengine.RealtimeClient, offer: str, count: int) -> int:
    async def one() -> None:
        async with rtengine.open_conversation(client, SESSION, offer_sdp=offer) as conv:
            await joined(conv)

    for _ in range(count):  # warm-up: first-use and bounded caches, the pooled connection
        await one()
    clear_url_cache()
    before = traced()
    for _ in range(count):
        await one()
    clear_url_cache()
    return (traced() - before) // count


async def run(count: int, sequential: int) -> dict[str, int]:
    async with open_peer_service() as peers:
        offer_peer = await peers.create_offer()
        offer = without_candidates(offer_peer.local_sdp)
        await offer_peer.aclose()
    results: dict[str, int] = {}
    for delay, names in ((0.0, ("joined", "retained")), (600.0, ("queued",))):
        async with trio.open_nursery() as nursery:
            process, base_url = await nursery.start(serve, delay)
            async with rtengine.RealtimeClient(base_url, api_key=KEY) as client:
                tracemalloc.start()
                try:
                    if "joined" in names:
                        await hold(client, offer, 2, fill=False)  # warm-up
                        await hold_plain(client, 2, bare=False)
                        await hold_plain(client, 2, bare=True)
                        results["bare"] = await hold_plain(client, count, bare=True)
                        results["websocket"] = await hold_plain(client, count, bare=False)
                        results["joined"] = await hold(client, offer, count, fill=False)
                        results["retained"] = await retained(client, offer, sequential)
                    else:
                        await hold(client, offer, 2, fill=True)
                        results["queued"] = await hold(client, offer, count, fill=True)
                finally:
                    tracemalloc.stop()
            process.send_signal(signal.SIGINT)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 conversations held, 20 in sequence")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    count, sequential = (10, 20) if args.quick else (50, 200)
    results = trio.run(run, count, sequential)
    payload = 64 * len(TEXT) + 256 * len(FRAME)
    print(f"python {sys.version.split()[0]}; {count} conversations held at once, {sequential} in sequence")
    print("| measurement | traced bytes per conversation |\n|---|---|")
    bare = results["bare"]
    print(f"| bare trio-websocket connection (baseline) | {bare / 1024:.1f} KiB |")
    print(f"| websocket conversation (joined, idle) | {results['websocket'] / 1024:.1f} KiB "
          f"({results['websocket'] / bare:.2f} × bare) |")  # fmt: skip
    joined = results["joined"]
    print(f"| joined (sideband up, buffers empty) | {joined / 1024:.1f} KiB ({joined / bare:.2f} × bare) |")
    queued = results["queued"] / 1024
    print(f"| queued (full buffers of shared objects, {payload / 1024:.0f} KiB of payload) | {queued:.1f} KiB |")
    print(f"| retained after the conversation ended | {results['retained']} B |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": sys.version.split()[0], "count": count, "sequential": sequential, **results}, fh)


if __name__ == "__main__":
    main()
