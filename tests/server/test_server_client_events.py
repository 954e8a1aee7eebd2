"""Every client event the local server does not process gets the API's ``error`` (issue #15, finding 5).

Hypothesis generates client events the API refuses — an unknown ``type``, a field no client event of that type
has, a required field missing, a field of the wrong type, an ``event_id`` that is not a string — and sends each,
then a sentinel, on a plain websocket, on a call's sideband websocket and on its ``oai-events`` data channel
(which also gets messages that are not events at all: not JSON, not an object, cut short). Each gets exactly
one ``error`` (valid for the openai SDK) carrying its ``event_id`` when it had a string one, and nothing else
happens; after the run the same conversation still completes a response.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from helpers import call_id_of, create_call, direct, loads, sideband
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawnet import valid_error

from rtengine.adapters._peer import Peer, open_peer_service
from rtengine.adapters._ws import open_socket
from rtengine.protocol import SocketEnd
from rtengine.server import LocalServer, ServerOptions, open_local_server
from rtengine.server._event_fields import CLIENT_EVENT_FIELDS

EXAMPLES = 150
SENTINEL = {"type": "conversation.item.truncate", "event_id": "sentinel", "item_id": "x"} | {
    "content_index": 0,
    "audio_end_ms": 0,
}

_scalar = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
)
_json: st.SearchStrategy[Any] = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=6,
)
_types = st.sampled_from(sorted(CLIENT_EVENT_FIELDS))


def _good_value(kind: type) -> Any:
    """A value of the right kind (the event has another defect, found before any value is looked into)."""
    return {} if kind is dict else ("x" if kind is str else 0)


def _wrong_for(kind: type) -> st.SearchStrategy[Any]:
    def wrong(value: Any) -> bool:
        if value is None:
            return False
        return not isinstance(value, kind) or (kind is int and isinstance(value, bool))

    return _json.filter(wrong)


@st.composite
def refused_events(draw: st.DrawFn) -> tuple[dict[str, Any], str | None]:
    """A client event the API refuses, and the ``event_id`` its ``error`` must carry."""
    eid = draw(st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12))
    kind = draw(st.sampled_from(["unknown_type", "unknown_field", "missing", "wrong_type", "bad_event_id"]))
    event_type = draw(_types)
    fields = CLIENT_EVENT_FIELDS[event_type]
    event: dict[str, Any] = {"type": event_type}
    required = [name for name, (_kind, _what, needed) in fields.items() if needed]
    for name in required:
        event[name] = _good_value(fields[name][0])
    match kind:
        case "unknown_type":
            event = {"type": draw(st.text(max_size=20).filter(lambda t: t not in CLIENT_EVENT_FIELDS))}
        case "unknown_field":
            name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in {*fields, "type", "event_id"}))
            event[name] = draw(_json)
        case "missing" if required:
            del event[draw(st.sampled_from(required))]
        case "wrong_type" if fields:
            name = draw(st.sampled_from(sorted(fields)))
            event[name] = draw(_wrong_for(fields[name][0]))
        case _:  # "bad_event_id", and the kinds this type cannot have
            event["event_id"] = draw(_json.filter(lambda v: v is not None and not isinstance(v, str)))
            return event, None
    if eid is not None:
        event["event_id"] = eid
    return event, eid


#: Events a fuzzing run found answered with nothing (an unknown field on ``response.create`` started a response).
EXPLICIT: list[tuple[dict[str, Any], str | None]] = [
    ({"type": "response.create", "audio": [], "event_id": "e1"}, "e1"),
    ({"type": "response.create", "response": 5, "event_id": "e2"}, "e2"),
    ({"type": "response.cancel", "response_id": 7}, None),
    ({"type": "input_audio_buffer.clear", "event_id": 3}, None),
]

Send = Callable[[str], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def answered(send: Send, receive: Receive, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``event`` then the sentinel; every server event up to the sentinel's error."""
    await send(json.dumps(event))
    await send(json.dumps(SENTINEL))
    seen: list[dict[str, Any]] = []
    with trio.fail_after(10):
        while True:
            got = await receive()
            if got["type"] == "error" and got["error"]["event_id"] == "sentinel":
                return seen
            seen.append(got)


def fuzz(send: Send, receive: Receive) -> None:
    """Run in a worker thread: hypothesis drives, each example runs on the trio side."""

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=refused_events())
    def one(case: tuple[dict[str, Any], str | None]) -> None:
        event, eid = case
        check(event, eid, trio.from_thread.run(answered, send, receive, event))

    for event, eid in EXPLICIT:
        check(event, eid, trio.from_thread.run(answered, send, receive, event))
    one()


def check(event: dict[str, Any], eid: str | None, seen: list[dict[str, Any]]) -> None:
    """``event`` got exactly one ``error`` (valid for the SDK), carrying ``eid``, and nothing else."""
    assert [e["type"] for e in seen] == ["error"], (event, seen)
    valid_error(seen[0])
    assert seen[0]["error"]["event_id"] == eid, (event, seen)


async def a_response_completes(send: Send, receive: Receive) -> None:
    await send(json.dumps({"type": "response.create"}))
    with trio.fail_after(10):
        while (await receive())["type"] != "response.done":
            pass


async def test_a_websocket_answers_every_refused_client_event_with_an_error(server: LocalServer) -> None:
    with trio.fail_after(240):
        async with open_socket(direct(server), {}) as sock:

            async def receive() -> dict[str, Any]:
                frame = await sock.receive()
                assert not isinstance(frame, SocketEnd), frame
                return loads(frame)

            assert (await receive())["type"] == "session.created"
            await trio.to_thread.run_sync(fuzz, sock.send, receive)
            await a_response_completes(sock.send, receive)
    assert server.record.connections[0].end == "client_close"


def generated_cases() -> list[tuple[dict[str, Any], str | None]]:
    """The examples drawn up front: aiortc draws from ``random`` on the trio thread, which hypothesis (drawing in a
    worker thread meanwhile) would take for a strategy using ``random``."""
    cases: list[tuple[dict[str, Any], str | None]] = list(EXPLICIT)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=refused_events())
    def collect(case: tuple[dict[str, Any], str | None]) -> None:
        cases.append(case)

    collect()
    return cases


class DataChannel:
    """The ``oai-events`` data channel of a caller's call, sending and receiving client and server events."""

    def __init__(self, caller: Peer, call_id: str) -> None:
        self.caller = caller
        self.call_id = call_id

    async def send(self, text: str) -> None:
        assert self.caller.send_data(text)

    async def receive(self) -> dict[str, Any]:
        message = await self.caller.messages.receive()
        assert isinstance(message, str)
        return loads(message)


@asynccontextmanager
async def data_channel_call() -> AsyncIterator[tuple[LocalServer, DataChannel]]:
    """A call to the local server (on its own peer service) with its data channel open and ``session.created``
    read; the block runs under the test's 240 s bound."""
    options = ServerOptions(delta_interval=0.0, greeting_ms=0)
    async with open_peer_service(loopback=True) as peers, open_local_server(options, peers=peers) as server:
        with trio.fail_after(240):
            caller: Peer = await peers.create_offer()
            created = await create_call(server, caller.local_sdp)
            await caller.apply_answer(created.text)
            await caller.channel_open.wait()
            channel = DataChannel(caller, call_id_of(created))
            assert (await channel.receive())["type"] == "session.created"
            yield server, channel


async def test_a_call_data_channel_answers_every_refused_client_event_with_an_error() -> None:
    cases = generated_cases()
    async with data_channel_call() as (server, channel):
        for event, eid in cases:
            seen = await answered(channel.send, channel.receive, event)
            check(event, eid, seen)
        await a_response_completes(channel.send, channel.receive)
        assert server.open_calls == [channel.call_id]
        await channel.caller.aclose()


async def test_a_call_sideband_answers_every_refused_client_event_with_an_error(
    server: LocalServer, offer_sdp: str
) -> None:
    with trio.fail_after(240):
        call_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as sock:

            async def receive() -> dict[str, Any]:
                frame = await sock.receive()
                assert not isinstance(frame, SocketEnd), frame
                return loads(frame)

            await trio.to_thread.run_sync(fuzz, sock.send, receive)
            await a_response_completes(sock.send, receive)
    assert server.open_calls == [call_id]


#: Data-channel messages that are not client events at all.
_not_events = st.one_of(
    st.text(max_size=40).filter(lambda t: not t.strip().startswith(("{", "[", '"')) or not t.strip()),
    _json.filter(lambda v: not isinstance(v, dict)).map(json.dumps),
    st.just("{" * 5000 + "}" * 5000),
    st.just('{"type": "response.create", "event_id": '),
)


def _is_sentinel(event: dict[str, Any]) -> bool:
    return event["type"] == "error" and bool(event["error"]["event_id"] == "sentinel")


async def test_a_call_data_channel_answers_every_non_event_message_with_an_error() -> None:
    messages: list[str] = ["", "null", "{}", '{"type": null}', '{"type": 42}']

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(message=_not_events)
    def collect(message: str) -> None:
        messages.append(message)

    collect()  # drawn up front: aiortc draws from ``random`` on the trio thread
    async with data_channel_call() as (server, channel):
        for message in messages:
            await channel.send(message)
            await channel.send(json.dumps(SENTINEL))
            seen: list[dict[str, Any]] = []
            while not _is_sentinel(got := await channel.receive()):
                seen.append(got)
            assert [e["type"] for e in seen] == ["error"], (message, seen)
            valid_error(seen[0])
        await a_response_completes(channel.send, channel.receive)
        assert server.open_calls == [channel.call_id]
        await channel.caller.aclose()
