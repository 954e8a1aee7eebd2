"""A flood of calls nobody uses cannot exhaust the local server (issue #15, finding 4, tried harder).

``max_connections`` caps TCP connections served at once, but each call creation is a short request: before
``max_calls``, a client creating calls in a loop left one answering peer (a socket) per call until
``call_connect_seconds``, so a few hundred creations locked everyone out of a 256-fd server. Beyond
``max_calls`` open calls, creation is answered ``503`` with ``Retry-After`` (the engine retries it); a call that
ends frees its place.
"""

from __future__ import annotations

import os

import httpx
import pytest
import trio
from helpers import call_id_of, create_call
from rawnet import headers_of, read_all, status_of

from rtengine.adapters._peer import PeerService
from rtengine.server import ServerOptions, open_local_server


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_call_creation_beyond_max_calls_is_refused_with_503_until_one_ends(
    peers: PeerService, offer_sdp: str
) -> None:
    options = ServerOptions(max_calls=4, max_connections=8, call_connect_seconds=60.0)
    with trio.fail_after(60):
        async with open_local_server(options, peers=peers) as server:
            before = _fds()
            answers = [await create_call(server, offer_sdp) for _ in range(40)]
            grown = _fds() - before
            assert [a.status_code for a in answers] == [201] * 4 + [503] * 36
            refused = answers[-1]
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "server_busy"
            assert len(server.open_calls) == 4
            assert grown < 20  # four calls' peers, not forty
            first = call_id_of(answers[0])
            async with httpx.AsyncClient() as http:
                hung_up = await http.post(f"{server.base_url}/realtime/calls/{first}/hangup")
            assert hung_up.status_code == 200
            assert first not in server.open_calls
            assert (await create_call(server, offer_sdp)).status_code == 201


def test_max_calls_must_allow_a_call() -> None:
    with pytest.raises(ValueError, match="max_calls"):
        ServerOptions(max_calls=0)


async def test_idle_connections_beyond_the_cap_are_refused_at_once_not_after_the_head_timeout(
    peers: PeerService,
) -> None:
    """Over the cap, the server used to wait ``header_timeout`` for each connection's request head before its 503:
    a flood of idle connections held a socket each for that long, beyond any cap."""
    options = ServerOptions(max_connections=3, header_timeout=30.0)
    with trio.fail_after(20):
        async with open_local_server(options, peers=peers) as server:
            holding = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(3)]
            while server.connections < 3:  # noqa: ASYNC110 - a count the server keeps, no event to wait on
                await trio.sleep(0.01)
            start = trio.current_time()
            flood = [await trio.open_tcp_stream("127.0.0.1", server.port) for _ in range(30)]
            answers = [await read_all(stream) for stream in flood]  # sending nothing
            assert trio.current_time() - start < 10.0  # each refused within its linger, not after 30 s
            assert {status_of(raw) for raw in answers} == {503}
            assert {headers_of(raw)["retry-after"] for raw in answers} == {"1"}
            for stream in holding + flood:
                await stream.aclose()
            async with httpx.AsyncClient() as http:  # the cap frees up once the holders go
                with trio.fail_after(5):
                    while (await http.get(f"{server.base_url}/nothing")).status_code == 503:  # noqa: ASYNC110
                        await trio.sleep(0.05)
