"""The scaffolding the schedule-as-data properties share (``tests/engine/test_properties.py``,
``test_reconnect_properties.py``, ``test_rotation_properties.py``, ``test_rejoin_properties.py``,
``test_rejoin_response_property.py``): the local server reached over the in-memory network (``memnet``) with a
client on it, one conversation driven by a schedule (consumer, timed close or cancellation, what the caller's end
left unread), what the server received per input kind, and the invariants they all check.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.testing
from engine_helpers import engine_tasks
from hypothesis import event
from hypothesis import strategies as st
from memnet import MemoryNetwork
from rejoin_helpers import feed, is_subsequence, split_audio

import rtengine
from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.events import Closed, ConversationEvent, Error, Started
from rtengine.server import LocalServer, ServerOptions, open_local_server

KINDS = ("text", "audio", "tool")


def timed_inputs(
    times: st.SearchStrategy[float], kinds: Sequence[str] = KINDS
) -> st.SearchStrategy[tuple[tuple[float, str], ...]]:
    """Up to 25 inputs ``(at, kind)``, sorted by time."""
    return st.lists(st.tuples(times, st.sampled_from(list(kinds))), max_size=25).map(lambda xs: tuple(sorted(xs)))


def no_inputs() -> dict[str, list[str]]:
    return {kind: [] for kind in KINDS}


@dataclass
class Run:
    """What one scheduled conversation left behind; each property's ``Outcome`` adds its own fields."""

    events: list[ConversationEvent] = field(default_factory=list)
    queued: dict[str, list[str]] = field(default_factory=no_inputs)
    stats: rtengine.ConversationStats | None = None
    leftover: list[str] = field(default_factory=list)
    started: bool = False
    closing_index: int | None = None  # where the events stood when the timed ``close()`` began
    close_took: float | None = None  # how long the timed ``close()`` took


_offer: list[str] = []


async def offer_sdp(peers: PeerService) -> str:
    """One real aiortc offer, made once and reused (the server's answerer needs a real one)."""
    if not _offer:
        peer = await peers.create_offer()
        _offer.append(peer.local_sdp)
        await peer.aclose()
    return _offer[0]


@dataclass
class Net:
    server: LocalServer
    peers: PeerService
    net: MemoryNetwork
    client: rtengine.RealtimeClient


@asynccontextmanager
async def memnet_client(
    options: ServerOptions,
    *,
    network: Callable[[LocalServer, trio.Nursery], MemoryNetwork] = MemoryNetwork,
    **client_options: Any,
) -> AsyncIterator[Net]:
    """The real local server with its peer service, the in-memory network to it, and a ``RealtimeClient`` on that
    network (with ``options``' API key and ``client_options``). Leaving the block cancels the network's server
    handlers and closes the HTTP client; on cancellation or an error the servers are closed all the same."""
    assert options.api_key is not None
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        async with trio.open_nursery() as net_nursery:
            net = network(server, net_nursery)
            client = rtengine.RealtimeClient(
                server.base_url,
                api_key=options.api_key,
                http_client=net.http,
                open_stream=net.open_stream,
                **client_options,
            )
            yield Net(server, peers, net, client)
            net_nursery.cancel_scope.cancel()
        await net.http.aclose()


async def run_on_schedule(
    client: rtengine.RealtimeClient,
    run: Run,
    start: float,
    close_at: float | None,
    cancel: bool,
    body: Callable[[rtengine.Conversation], Awaitable[None]],
    also: Callable[[], Awaitable[None]] | None = None,
    **options: Any,
) -> rtengine.Conversation | None:
    """Open a conversation on ``client`` (the default session; ``options`` for ``open_conversation``) and run
    ``body`` (the inputs, then the wait and the close) while a task collects its events into ``run``, ``also`` runs
    beside them (drops, faults), and at ``close_at`` (virtual time after ``start``) the caller closes the
    conversation — or cancels the whole block when ``cancel``. Afterwards the events a cancellation kept from the
    consumer are read too, and ``run.stats`` and ``run.leftover`` (the engine tasks still alive) are filled in;
    returns the conversation (None when it was cancelled while starting)."""
    box: list[rtengine.Conversation] = []
    with trio.CancelScope() as outer:
        if cancel and close_at is not None:
            outer.deadline = start + close_at
        async with rtengine.open_conversation(client, rtengine.SessionConfig(), **options) as conv:
            box.append(conv)
            run.started = True

            async def consume() -> None:
                async for item in conv.events:
                    run.events.append(item)

            async def close_later() -> None:
                assert close_at is not None
                await trio.sleep_until(start + close_at)
                run.closing_index = len(run.events) + conv.events.pending()
                began = trio.current_time()
                await conv.close()
                run.close_took = trio.current_time() - began

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                if also is not None:
                    nursery.start_soon(also)
                if close_at is not None and not cancel:
                    nursery.start_soon(close_later)
                await body(conv)
    if box:
        async for item in box[0].events:  # what an outer cancellation kept the consumer from reading
            run.events.append(item)
        run.stats = box[0].stats
    run.leftover = engine_tasks()
    return box[0] if box else None


def feed_then_close(
    inputs: Sequence[tuple[float, str]], queued: dict[str, list[str]], start: float, until: float
) -> Callable[[rtengine.Conversation], Awaitable[None]]:
    """A ``run_on_schedule`` body: feed the scheduled inputs (``rejoin_helpers.feed``), wait until ``until``
    (virtual time after ``start``), then close the conversation."""

    async def body(conv: rtengine.Conversation) -> None:
        await feed(inputs, queued, conv, start)
        await trio.sleep_until(start + until)
        await conv.close()

    return body


def received(frames: list[dict[str, object]], *, user_texts_only: bool = False) -> dict[str, list[str]]:
    """The inputs in client frames, per kind, in order (audio as the 2-byte frames sent: frames that waited together
    arrive in one append). Every item but a tool output counts as a text, unless ``user_texts_only``: then items of
    other roles (a replayed conversation's answers) are skipped."""
    got = no_inputs()
    for frame in frames:
        if frame.get("type") == "input_audio_buffer.append":
            got["audio"].extend(split_audio(str(frame["audio"]), 2))
        elif frame.get("type") == "conversation.item.create":
            item = frame["item"]
            assert isinstance(item, dict)
            if item["type"] == "function_call_output":
                got["tool"].append(str(item["call_id"]))
            elif not user_texts_only or item.get("role") == "user":
                got["text"].append(str(item["content"][0]["text"]))
    return got


def examine(scenario: Callable[..., Awaitable[None]], check: Callable[[Any, Any], None], s: object, out: Run) -> None:
    """Run one example's ``scenario(s, out)`` on virtual time (``run_virtual``) and ``check(s, out)`` what it left."""
    run_virtual(scenario, s, out)
    check(s, out)


def run_virtual(scenario: Callable[..., Awaitable[None]], *args: object) -> None:
    """``trio.run(scenario, *args)`` on a fresh ``MockClock(autojump_threshold=0)``: virtual time that jumps
    whenever every task waits."""
    trio.run(scenario, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def note_ending(events: list[ConversationEvent]) -> None:
    """Tell hypothesis's statistics how the conversation ended."""
    closed = events[-1] if events else None
    event(f"closed: {closed.reason if isinstance(closed, Closed) else 'never started'}")


def ended_as_requested(run: Run) -> rtengine.ConversationStats | None:
    """No engine task left; then (unless the conversation was cancelled while starting: None) ``Started`` first, one
    ``Closed("requested")`` last, no ``Error`` at all; the conversation's stats."""
    assert run.leftover == []
    if not run.started:
        return None
    assert closed_last(run.events).reason == "requested"
    assert [e for e in run.events if isinstance(e, Error)] == []
    assert run.stats is not None
    return run.stats


def websocket_sessions(
    sockets: list[list[dict[str, object]]], queued: dict[str, list[str]]
) -> list[dict[str, list[str]]]:
    """What each websocket session of one conversation received (a new session per reconnect or rotation), per kind;
    asserts that every session starts with ``session.update``, that each was given the texts of the one before it
    first (the replay), that the last holds each text once, in the order queued, and that audio and tool outputs
    arrived in order, each at most once, across the sessions."""
    assert all(frames[0]["type"] == "session.update" for frames in sockets)
    per_socket = [received(frames, user_texts_only=True) for frames in sockets]
    texts = per_socket[-1]["text"]
    assert len(set(texts)) == len(texts), "a text twice in the last session"
    assert is_subsequence(texts, queued["text"]), "texts reordered"
    assert_replayed(per_socket)
    for kind in ("audio", "tool"):
        assert_once_in_order(per_socket, queued, kind)
    return per_socket


def closed_last(events: list[ConversationEvent]) -> Closed:
    """``Started`` first and exactly one ``Closed``, the last event; that ``Closed``."""
    assert events, "no events at all"
    assert isinstance(events[0], Started)
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1, [type(e).__name__ for e in events]
    assert events[-1] is closed[0]
    return closed[0]


def assert_replayed(per_socket: list[dict[str, list[str]]]) -> None:
    """Each connection was given the texts of the one before it first (the replay: the conversation so far)."""
    for before, after in itertools.pairwise(per_socket):
        assert after["text"][: len(before["text"])] == before["text"]


def assert_once_in_order(per_socket: list[dict[str, list[str]]], queued: dict[str, list[str]], kind: str) -> None:
    """Across the connections, the inputs of ``kind`` arrived in the order queued, none twice."""
    got = [x for socket in per_socket for x in socket[kind]]
    assert len(set(got)) == len(got), f"{kind} delivered twice"
    assert is_subsequence(got, queued[kind]), kind


def assert_accounted(stats: rtengine.ConversationStats, queued: dict[str, list[str]], *, expired: bool = True) -> None:
    """Every queued input is accounted for exactly once: written, discarded at the end (and, with ``expired``,
    expired), lost or interrupted."""
    written = stats.texts_sent + stats.tool_outputs_sent + stats.audio_frames_sent
    unsent = stats.texts_discarded + stats.tool_items_discarded + stats.audio_frames_discarded
    if expired:
        unsent += stats.audio_frames_expired
    assert sum(map(len, queued.values())) == written + unsent + stats.inputs_lost + stats.inputs_interrupted
