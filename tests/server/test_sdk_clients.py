"""Clients nobody here wrote, against the local server: the ``openai`` SDK's ``client.realtime.connect`` and the
``openai-agents`` SDK's ``RealtimeRunner``.

Both are asyncio. The test is synchronous: the local server runs in a thread of its own (its own ``trio.run``),
each client in ``asyncio.run`` on the test's thread, so neither event loop hosts the other. Both clients' loggers
are captured: a validation error (or any error) logged by either fails the test, and the suite-wide fixture
checks every event the server sent against the SDK's types.
"""

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from agents.realtime.model_events import RealtimeModelRawServerEvent

from rtengine.server import LocalServer, ServerOptions, open_local_server

#: Seconds either client may take for its whole conversation (the server thread is stopped after it).
CLIENT_DEADLINE = 20.0


@contextmanager
def server_in_thread(options: ServerOptions) -> Iterator[LocalServer]:
    """A local server on 127.0.0.1:0 in a thread with its own ``trio.run``; stopped (and joined) on exit."""
    started: queue.Queue[tuple[LocalServer, trio.lowlevel.TrioToken, trio.Event] | BaseException] = queue.Queue()

    async def serve() -> None:
        stop = trio.Event()
        async with open_local_server(options) as server:
            started.put((server, trio.lowlevel.current_trio_token(), stop))
            await stop.wait()

    def run() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # handed to the test's thread, which raises it
            started.put(exc)

    thread = threading.Thread(target=run, name="local-server")
    thread.start()
    try:
        first = started.get(timeout=CLIENT_DEADLINE)
        if isinstance(first, BaseException):
            raise first
        server, token, stop = first
        try:
            yield server
        finally:
            trio.from_thread.run_sync(stop.set, trio_token=token)
    finally:
        thread.join(timeout=CLIENT_DEADLINE)
        assert not thread.is_alive(), "the local server thread did not stop"
    if not started.empty():
        late = started.get()
        if isinstance(late, BaseException):
            raise late


def ws_base(server: LocalServer) -> str:
    return server.base_url.replace("http://", "ws://")


async def openai_sdk_turn(server: LocalServer) -> list[Any]:
    """One text turn with ``AsyncOpenAI().realtime.connect``; the parsed events up to ``response.done``."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="sk-local", base_url=server.base_url, websocket_base_url=ws_base(server))
    events: list[Any] = []
    async with asyncio.timeout(CLIENT_DEADLINE), client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={"type": "realtime", "instructions": "From the openai SDK.", "output_modalities": ["text"]}
        )
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}
        )
        await conn.response.create()
        async for event in conn:
            events.append(event)
            if event.type == "response.done":
                break
    await client.close()
    return events


async def agents_sdk_turn(server: LocalServer) -> list[Any]:
    """One text turn with the openai-agents ``RealtimeRunner``; its session events up to the raw ``response.done``."""
    from agents.realtime import RealtimeAgent, RealtimeRunner

    agent = RealtimeAgent(name="Assistant", instructions="From the agents SDK: answer briefly.")
    runner = RealtimeRunner(agent, config={"model_settings": {"modalities": ["text"]}})
    session = await runner.run(
        model_config={"api_key": "sk-local", "url": f"{ws_base(server)}/realtime?model=gpt-realtime"}
    )
    events: list[Any] = []
    async with asyncio.timeout(CLIENT_DEADLINE), session:
        await session.send_message("Say hello.")
        async for event in session:
            events.append(event)
            if event.type == "error":
                break
            raw = getattr(getattr(event, "data", None), "data", None)
            if isinstance(raw, dict) and raw.get("type") == "response.done":
                break
    return events


def client_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.name.startswith(("openai", "agents")) and r.levelno >= logging.WARNING
    ]


def test_openai_sdk_realtime_connect_streams_a_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="openai")
    with server_in_thread(ServerOptions(delta_interval=0.0)) as server:
        events = asyncio.run(openai_sdk_turn(server))
    types = [e.type for e in events]
    assert types[:2] == ["session.created", "session.updated"]
    assert events[1].session.instructions == "From the openai SDK."
    assert "response.output_text.delta" in types
    assert events[-1].response.status == "completed"
    assert events[-1].response.output[0].content[0].text == "You said: Say hello."
    assert client_errors(caplog) == []


def test_openai_agents_runner_session_update_is_applied(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="openai.agents")
    with server_in_thread(ServerOptions(delta_interval=0.0)) as server:
        events = asyncio.run(agents_sdk_turn(server))
        (conn,) = server.record.directs()
    assert [e.type for e in events if e.type == "error"] == []
    raw = [
        e.data.data for e in events if e.type == "raw_model_event" and isinstance(e.data, RealtimeModelRawServerEvent)
    ]
    updated = [r for r in raw if r.get("type") == "session.updated"]
    assert updated, "the agent's session.update was not answered"
    assert updated[-1]["session"]["instructions"] == "From the agents SDK: answer briefly."
    assert raw[-1]["type"] == "response.done"
    assert raw[-1]["response"]["status"] == "completed"
    sent = [f for f in conn.frames_in if isinstance(f, dict) and f.get("type") == "session.update"]
    assert "model" in sent[0]["session"]  # the SDK always sends it; the server must accept it
    assert "error" not in conn.types_out()
    assert client_errors(caplog) == []
