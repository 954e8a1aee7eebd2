"""The local server stays bounded however long it runs (issue #15, finding 4): calls nobody uses end, the record is a
ring of the most recent calls and connections, and connections beyond the cap are refused (``test_server_bounds``)."""

import json

import pytest
import trio
from helpers import call_id_of, create_call, direct, sideband

from rtengine.adapters._peer import open_peer_service
from rtengine.adapters._ws import open_socket
from rtengine.server import ServerOptions, open_local_server
from rtengine.server._record import Ring

UPDATE = json.dumps({"type": "session.update", "session": {"type": "realtime"}})


async def test_a_connected_call_nobody_uses_ends_after_unused_call_seconds() -> None:
    """Media up, but no sideband ever joined and the data channel stayed silent: the call ends (and its answering
    peer is closed) at ``unused_call_seconds``, as the API expires unused calls."""
    async with open_peer_service(loopback=True) as peers:
        options = ServerOptions(delta_interval=0.0, greeting_ms=0, unused_call_seconds=1.0)
        async with open_local_server(options, peers=peers) as server:
            with trio.fail_after(20):
                caller = await peers.create_offer()
                start = trio.current_time()
                created = await create_call(server, caller.local_sdp)
                await caller.apply_answer(created.text)
                call = call_id_of(created)
                await server.record.wait_until(lambda: server.record.calls[0].connected)
                await server.record.wait_until(lambda: call not in server.open_calls)
                elapsed = trio.current_time() - start
                await caller.aclose()
            assert peers.open_peers == 0
    assert server.record.calls[0].end == "unused"
    assert 0.9 <= elapsed < 5.0


async def test_a_joined_call_and_a_call_with_data_channel_traffic_do_not_expire_as_unused() -> None:
    async with open_peer_service(loopback=True) as peers:
        options = ServerOptions(delta_interval=0.0, greeting_ms=0, unused_call_seconds=0.5)
        async with open_local_server(options, peers=peers) as server:
            with trio.fail_after(20):
                joined, talking = await peers.create_offer(), await peers.create_offer()
                ids = []
                for caller in (joined, talking):
                    created = await create_call(server, caller.local_sdp)
                    await caller.apply_answer(created.text)
                    await caller.connected.wait()
                    ids.append(call_id_of(created))
                await talking.channel_open.wait()
                assert talking.send_data(UPDATE)
                async with open_socket(sideband(server, ids[0]), {}) as sock:
                    await sock.send(UPDATE)
                    await trio.sleep(1.5)  # three times the limit
                    assert server.open_calls == ids
                for caller in (joined, talking):
                    await caller.aclose()
                await server.record.wait_until(lambda: not server.open_calls)
    assert [c.end for c in server.record.calls] == ["media_closed", "media_closed"]


async def test_the_record_keeps_only_the_most_recent_connections() -> None:
    """A long-running server holds a bounded history: with ``record_limit=3``, five conversations leave the last
    three in the record (each with its frames), and the ring says how many it dropped."""
    options = ServerOptions(delta_interval=0.0, record_limit=3)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        with trio.fail_after(20):
            for index in range(5):
                async with open_socket(direct(server, model=f"m{index}"), {}) as sock:
                    await sock.receive()  # session.created
            await server.record.wait_until(lambda: all(c.end is not None for c in server.record.connections))
    assert [c.query["model"] for c in server.record.connections] == ["m2", "m3", "m4"]
    assert all(c.types_out() == ["session.created"] for c in server.record.connections)
    assert server.record.connections.dropped == 2


async def test_full_recording_is_opt_in() -> None:
    options = ServerOptions(delta_interval=0.0, record_limit=None)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        with trio.fail_after(20):
            for _ in range(4):
                async with open_socket(direct(server), {}) as sock:
                    await sock.receive()
    assert len(server.record.connections) == 4
    assert server.record.connections.dropped == 0


def test_the_defaults_bound_the_server() -> None:
    options = ServerOptions()
    assert (options.unused_call_seconds, options.record_limit, options.max_connections) == (120.0, 100, 1000)


@pytest.mark.parametrize(
    "bad", [{"unused_call_seconds": 0.0}, {"unused_call_seconds": float("nan")}, {"record_limit": 0}]
)
def test_bounds_that_bound_nothing_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ServerOptions(**bad)  # type: ignore[arg-type]


def test_a_ring_appends_like_a_list_and_drops_the_oldest() -> None:
    ring: Ring[int] = Ring(2)
    for value in range(5):
        ring.append(value)
    assert ring == [3, 4]
    assert (ring[-1], ring[0], ring.dropped) == (4, 3, 3)
    with pytest.raises(ValueError, match="limit"):
        Ring(0)
