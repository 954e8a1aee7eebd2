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
