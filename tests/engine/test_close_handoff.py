"""Leaving a conversation is quick even when the server never answers CLOSE: the close handshake finishes under the
``RealtimeClient`` (its own nursery, bounded by ``close_timeout``), and nothing outlives the client."""

import gc

import pytest
import trio
from engine_helpers import API_KEY, engine_tasks, live_tasks, serving, until

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import SessionUpdated
from rtengine.server import Faults

SESSION = rtengine.SessionConfig()


def rtengine_tasks() -> list[str]:
    """Live tasks started by rtengine's client side (the engine's, and the client's pending closes); the local
    server runs in this process too and is not counted."""
    return sorted(t.name for t in live_tasks() if "rtengine" in t.name and "rtengine.server" not in t.name)


async def test_leaving_the_block_is_quick_with_defaults_when_the_server_never_answers_close(
    peers: PeerService,
) -> None:
    with trio.fail_after(15):
        async with serving(peers, faults=Faults(ignore_client_close=True)) as server:
            async with rtengine.RealtimeClient(server.base_url, api_key=API_KEY) as client:  # default settings
                async with rtengine.open_conversation(client, SESSION) as conv:
                    await until(conv, SessionUpdated)
                    leaving = trio.current_time()
                left = trio.current_time() - leaving
                assert engine_tasks() == []
                pending = rtengine_tasks()
                exiting = trio.current_time()
            client_exit = trio.current_time() - exiting
            assert rtengine_tasks() == []
            record = server.record.directs()[-1]
            await server.record.wait_until(lambda: record.end is not None)
    assert left < 0.5  # 50 ms of grace, not the 1 s close_timeout (benchmarks/close.py measures it)
    assert [name.split(" ws://")[0] for name in pending] == ["rtengine.RealtimeClient close handshake"]
    assert client_exit < 2.5  # waits for the pending close: bounded by close_timeout (1 s)
    assert (record.end, record.close_code, record.close_answered) == ("client_close", 1000, False)


async def test_a_healthy_server_gets_the_whole_handshake_and_nothing_outlives_the_client(
    peers: PeerService,
) -> None:
    with trio.fail_after(15):
        async with serving(peers) as server:
            async with rtengine.RealtimeClient(server.base_url, api_key=API_KEY) as client:
                for _ in range(3):
                    async with rtengine.open_conversation(client, SESSION) as conv:
                        await until(conv, SessionUpdated)
            assert rtengine_tasks() == []
            gc.collect()  # a socket left to the collector would raise ResourceWarning (an error in this suite)
            records = server.record.directs()
    assert [(r.end, r.close_code, r.close_answered) for r in records] == [("client_close", 1000, True)] * 3


async def test_the_client_exit_waits_for_every_pending_close_even_when_cancelled(peers: PeerService) -> None:
    with trio.fail_after(15):
        async with serving(peers, faults=Faults(ignore_client_close=True)) as server:
            with trio.CancelScope() as outer:
                async with rtengine.RealtimeClient(server.base_url, api_key=API_KEY, close_timeout=0.5) as client:
                    for _ in range(3):
                        async with rtengine.open_conversation(client, SESSION) as conv:
                            await until(conv, SessionUpdated)
                    assert len(rtengine_tasks()) == 3  # three closes waiting for replies that never come
                    outer.cancel()  # the exit still waits for them (shielded, bounded)
            assert rtengine_tasks() == []
            gc.collect()
            records = server.record.directs()
            await server.record.wait_until(lambda: all(r.end is not None for r in records))
    assert [(r.end, r.close_code) for r in records] == [("client_close", 1000)] * 3


async def test_a_client_used_without_async_with_closes_inline(peers: PeerService) -> None:
    with trio.fail_after(15):
        async with serving(peers, faults=Faults(ignore_client_close=True)) as server:
            client = rtengine.RealtimeClient(server.base_url, api_key=API_KEY, close_timeout=0.3)
            try:
                async with rtengine.open_conversation(client, SESSION) as conv:
                    await until(conv, SessionUpdated)
                    leaving = trio.current_time()
                left = trio.current_time() - leaving
                assert rtengine_tasks() == []  # nobody else could own the close: it ran to its deadline inline
            finally:
                await client.aclose()
    assert left >= 0.3


async def test_the_client_blocks_own_exception_comes_out_as_itself(peers: PeerService) -> None:
    with trio.fail_after(15):
        async with serving(peers) as server:
            with pytest.raises(KeyError) as info:  # noqa: PT012 - leaving the block is under test
                async with rtengine.RealtimeClient(server.base_url, api_key=API_KEY) as client:
                    async with rtengine.open_conversation(client, SESSION) as conv:
                        await until(conv, SessionUpdated)
                    raise KeyError("mine")
            assert rtengine_tasks() == []
    assert type(info.value) is KeyError
    assert info.value.args == ("mine",)


async def test_a_nested_entry_leaves_the_closes_to_the_outermost_block(peers: PeerService) -> None:
    with trio.fail_after(15):
        async with serving(peers, faults=Faults(ignore_client_close=True)) as server:
            client = rtengine.RealtimeClient(server.base_url, api_key=API_KEY, close_timeout=0.5)
            async with client:
                async with client, rtengine.open_conversation(client, SESSION) as conv:  # a helper enters it too
                    await until(conv, SessionUpdated)
                assert len(rtengine_tasks()) == 1  # the close goes on under the outer block
            assert rtengine_tasks() == []
