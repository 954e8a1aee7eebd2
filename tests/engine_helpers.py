"""Helpers for engine tests: a keyed local server, a client, event collection and a task census."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import trio

import rtengine
from rtengine import webrtc
from rtengine.adapters._peer import Peer, PeerService
from rtengine.events import Closed, ConversationEvent, Error
from rtengine.server import LocalServer, ServerOptions, open_local_server

API_KEY = "sk-test-0123456789abcdef"


@asynccontextmanager
async def serving(peers: PeerService, **options: object) -> AsyncIterator[LocalServer]:
    settings: dict[str, object] = {"api_key": API_KEY, "delta_interval": 0.0}
    settings.update(options)
    opts = ServerOptions(**settings)  # type: ignore[arg-type]
    async with open_local_server(opts, peers=peers) as server:
        yield server


@asynccontextmanager
async def data_channel_call() -> AsyncIterator[tuple[LocalServer, rtengine.Conversation, Peer]]:
    """A WebRTC conversation against a local server over loopback, rtengine the media peer, its ``oai-events`` data
    channel open: (the server, the conversation, rtengine's peer — which writes on the data channel)."""
    async with webrtc.open_media_engine(loopback=True) as engine, serving(engine) as server:
        media = webrtc.Media(engine, connect_timeout=5, data_channel=True)
        async with (
            client_for(server) as client,
            rtengine.open_conversation(client, rtengine.SessionConfig(), media=media) as conv,
        ):
            assert conv.media is not None
            await conv.media.peer.channel_open.wait()
            yield server, conv, cast(Peer, conv.media.peer)


def client_for(server: LocalServer, **kwargs: object) -> rtengine.RealtimeClient:
    settings: dict[str, object] = {"backoff_base": 0.01, "connect_timeout": 5.0, "close_timeout": 1.0}
    settings.update(kwargs)
    return rtengine.RealtimeClient(server.base_url, api_key=API_KEY, **settings)  # type: ignore[arg-type]


async def drain(conv: rtengine.Conversation) -> list[ConversationEvent]:
    """Every event until the channel ends."""
    return [event async for event in conv.events]


async def until(conv: rtengine.Conversation, kind: type) -> list[ConversationEvent]:
    """Events up to and including the first instance of ``kind``."""
    seen: list[ConversationEvent] = []
    async for event in conv.events:
        seen.append(event)
        if isinstance(event, kind):
            return seen
    raise AssertionError(f"events ended before {kind.__name__}: {[type(e).__name__ for e in seen]}")


def ends(events: list[ConversationEvent]) -> list[ConversationEvent]:
    return [e for e in events if isinstance(e, Error | Closed)]


def live_tasks() -> set[trio.lowlevel.Task]:
    """Every task currently alive in this trio run."""
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found


ENGINE_TASK_MARKERS = (
    "rtengine.engine._conversation",
    "rtengine.engine._manager",
    "rtengine.engine._redial",
    "rtengine.engine._legs",
    "rtengine.engine._media",
    "rtengine.engine._wsession",
    "rtengine.engine._sideband",
    "rtengine.engine._follow",
    "rtengine.engine._rejoin",
    "rtengine.engine._outlet",
    "rtengine.engine._start",
    "rtengine.adapters._ws",
)


def engine_tasks() -> list[str]:
    """Names of live tasks that belong to the engine (conversation tasks, websocket readers)."""
    return sorted(t.name for t in live_tasks() if any(m in t.name for m in ENGINE_TASK_MARKERS))
