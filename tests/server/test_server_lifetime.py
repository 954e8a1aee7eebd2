"""How long the local server's calls and sessions live, like the real API's, over real loopback sockets.

What the API does, as recorded from api.openai.com by pydantic/pydantic-ai (MIT), tests/realtime/cassettes
(test_openai_ws_sideband/test_webrtc_sideband_*.yaml@de3eaf32cc, test_openai_ws/test_webrtc_hang_up_ends_the_call.yaml
@f0e9ae4803):

* a sideband gets no ``session.created``: its first event is the ``session.updated`` answering its
  ``session.update``; the session of call ``rtc_u0_E4TeWIkEAnw5DOa1vyO18`` is ``sess_u0_E4TeWIkEAnw5DOa1vyO18``;
* call ids look like ``rtc_u1_ETYJSp3oMdsOb7HW9eMflgesrIs0XaTn``; a direct session's id like
  ``sess_E6U0txeK1UA23CH3RdweL``;
* a call ends on hang-up (then ``404 call_id_not_found``), when its media goes, or at the session cap, where the GA
  API closes the socket with ``1001`` "Your session hit the maximum duration of 60 minutes." — not when a sideband
  leaves.
"""

import re
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from helpers import call_id_of, create_call, direct, loads, sideband
from hypothesis import given
from hypothesis import strategies as st
from memnet import MemoryNetwork
from sdk_events import assert_sdk_valid

from rtengine import SessionConfig
from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.protocol import SocketEnd, response_create, user_text
from rtengine.protocol._calls import call_id_from_location, validate_call_id
from rtengine.protocol._payloads import encode
from rtengine.server import LocalServer, ServerOptions, open_local_server
from rtengine.server._ids import call_id, session_id, session_id_of_call
from rtengine.server._options import session_cap_message

NOT_FOUND = "No session found for the provided call_id"


def valid(frame: object) -> dict[str, Any]:
    """A server event, checked against the ``openai`` package's GA types (unknown fields rejected)."""
    event = loads(frame)
    assert_sdk_valid(event)
    return event


async def session_update(sock: RealtimeSocket, **session: object) -> dict[str, Any]:
    """Send ``session.update`` and return the next event (it must be the ``session.updated`` answering it)."""
    await sock.send(encode({"type": "session.update", "session": {"type": "realtime", **session}}))
    updated = valid(await sock.receive())
    assert updated["type"] == "session.updated"
    return updated


async def until(sock: RealtimeSocket, event_type: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        seen.append(valid(await sock.receive()))
        if seen[-1]["type"] == event_type:
            return seen


async def hang_up(server: LocalServer, call: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{server.base_url}/realtime/calls/{call}/hangup")


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": NOT_FOUND,
        "type": "invalid_request_error",
        "code": "call_id_not_found",
        "param": "",
    }


async def closed_with(sock: RealtimeSocket) -> SocketEnd:
    """Read until the server ends the socket (events before the end are checked and dropped)."""
    while True:
        frame = await sock.receive()
        if isinstance(frame, SocketEnd):
            return frame
        valid(frame)


# --- sidebands come and go; the call stays -----------------------------------------------------------------------


async def test_a_sideband_can_leave_and_join_the_same_call_again(server: LocalServer, offer_sdp: str) -> None:
    """The call and its conversation outlive a sideband: the next one sees the same session and items, and each
    sideband's first event is the ``session.updated`` answering its own ``session.update``."""
    with trio.fail_after(10):
        call = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call), {}) as sock:
            first = await session_update(sock, instructions="remember me")
            assert first["session"]["instructions"] == "remember me"
            await sock.send(encode(user_text("before the break")))
            await until(sock, "conversation.item.done")
        await server.record.wait_until(lambda: server.record.sidebands()[0].end is not None)
        assert server.open_calls == [call]
        assert server.record.calls[0].end is None
        async with open_socket(sideband(server, call), {}) as sock:
            again = await session_update(sock)
            assert again["session"]["instructions"] == "remember me"  # the same session
            assert again["session"]["id"] == first["session"]["id"]
            await sock.send(encode(response_create()))
            events = await until(sock, "response.done")
        transcripts = [e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"]
        assert transcripts == ["You said: before the break"]  # the same conversation
        assert (await hang_up(server, call)).status_code == 200
        assert_not_found(await hang_up(server, call))
    assert [c.types_out()[0] for c in server.record.sidebands()] == ["session.updated", "session.updated"]
    assert [c.end for c in server.record.sidebands()] == ["client_close", "client_close"]
    assert server.record.calls[0].end == "hangup"


async def test_a_direct_session_still_opens_with_session_created(server: LocalServer) -> None:
    with trio.fail_after(10):
        async with open_socket(direct(server), {}) as sock:
            created = valid(await sock.receive())
            await session_update(sock)
    assert created["type"] == "session.created"
    assert re.fullmatch(r"sess_[A-Za-z0-9]{21}", created["session"]["id"])


# --- ids ---------------------------------------------------------------------------------------------------------


async def test_call_ids_and_their_session_ids_look_like_the_apis(server: LocalServer, offer_sdp: str) -> None:
    with trio.fail_after(10):
        response = await create_call(server, offer_sdp)
        location = response.headers["location"]
        match = re.fullmatch(r"/v1/realtime/calls/(rtc_u1_([A-Za-z0-9]{32}))", location)
        assert match is not None, location
        call = match.group(1)
        assert call_id_from_location(location) == call  # the engine's own rules take it
        async with open_socket(sideband(server, call), {}) as sock:
            updated = await session_update(sock)
        assert updated["session"]["id"] == f"sess_u1_{match.group(2)}"
        assert (await hang_up(server, call)).status_code == 200


def test_id_makers_draw_fresh_api_shaped_ids() -> None:
    calls = {call_id() for _ in range(200)}
    assert len(calls) == 200
    for made in calls:
        assert validate_call_id(made) == made
        assert re.fullmatch(r"rtc_u1_[A-Za-z0-9]{32}", made)
        assert session_id_of_call(made) == "sess_u1_" + made[len("rtc_u1_") :]
    assert session_id_of_call("rtc_u0_E4TeWIkEAnw5DOa1vyO18") == "sess_u0_E4TeWIkEAnw5DOa1vyO18"  # as recorded
    sessions = {session_id() for _ in range(200)}
    assert len(sessions) == 200
    assert all(re.fullmatch(r"sess_[A-Za-z0-9]{21}", s) for s in sessions)


# --- the session cap ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(3600, "60 minutes"), (1800, "30 minutes"), (900, "15 minutes"), (60, "1 minute"), (90, "1.5 minutes")],
)
def test_the_cap_message_reads_like_the_apis(seconds: float, minutes: str) -> None:
    assert session_cap_message(seconds) == f"Your session hit the maximum duration of {minutes}."
    assert ServerOptions(session_max_seconds=seconds).session_cap_message == session_cap_message(seconds)


@given(st.floats(min_value=0.6, max_value=1e7, allow_nan=False))
def test_the_cap_message_states_the_cap_in_minutes(seconds: float) -> None:
    message = session_cap_message(seconds)
    match = re.fullmatch(r"Your session hit the maximum duration of (\d+(?:\.\d{1,2})?) minutes?\.", message)
    assert match is not None, message
    assert abs(float(match.group(1)) - seconds / 60) <= 0.005 + 1e-9
    assert match.group(0).endswith(" minute.") is (match.group(1) == "1")


@pytest.mark.parametrize("field", ["session_max_seconds", "call_connect_seconds"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_caps_must_be_positive(field: str, value: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        ServerOptions(**{field: value})  # type: ignore[arg-type]


def test_the_defaults_are_the_apis_hour_and_a_bounded_connect() -> None:
    options = ServerOptions()
    assert options.session_max_seconds == 3600
    assert options.session_cap_message == "Your session hit the maximum duration of 60 minutes."
    assert 0 < options.call_connect_seconds <= 60


async def test_the_cap_closes_a_direct_socket_with_1001(peers: PeerService) -> None:
    options = ServerOptions(delta_interval=0.0, session_max_seconds=0.6)
    async with open_local_server(options, peers=peers) as server:
        with trio.fail_after(10):
            async with open_socket(direct(server), {}) as sock:
                start = trio.current_time()
                assert valid(await sock.receive())["type"] == "session.created"
                await session_update(sock)
                end = await closed_with(sock)
                elapsed = trio.current_time() - start
            record = server.record.directs()[0]
            await server.record.wait_until(lambda: record.close_answered is not None)
    assert (end.clean, end.code, end.reason) == (True, 1001, options.session_cap_message)
    assert 0.5 <= elapsed < 3.0
    assert (record.end, record.close_code, record.close_answered) == ("session_expired", 1001, True)


async def test_the_cap_ends_a_call_and_closes_every_sideband_with_1001(peers: PeerService, offer_sdp: str) -> None:
    options = ServerOptions(delta_interval=0.0, session_max_seconds=1.0)
    async with open_local_server(options, peers=peers) as server:
        before = peers.open_peers
        with trio.fail_after(10):
            start = trio.current_time()
            call = call_id_of(await create_call(server, offer_sdp))
            assert peers.open_peers == before + 1
            async with open_socket(sideband(server, call), {}) as one, open_socket(sideband(server, call), {}) as two:
                await session_update(one)
                await session_update(two)
                ends = [await closed_with(one), await closed_with(two)]
            elapsed = trio.current_time() - start
            await server.record.wait_until(lambda: call not in server.open_calls)
            assert_not_found(await hang_up(server, call))
        assert peers.open_peers == before  # the call's answering peer is closed
    assert all((e.clean, e.code, e.reason) == (True, 1001, options.session_cap_message) for e in ends)
    assert 0.9 <= elapsed < 4.0
    assert server.record.calls[0].end == "session_expired"
    assert [(c.end, c.close_code) for c in server.record.sidebands()] == [("session_expired", 1001)] * 2


async def test_the_default_cap_is_an_hour_on_a_virtual_clock(autojump_clock: trio.testing.MockClock) -> None:
    """At the default cap (3600 s of virtual time) a direct socket and a call's sideband are closed with the API's
    1001 and message; the direct one lives exactly as long as the cap."""
    options = ServerOptions(delta_interval=0.0, call_connect_seconds=7200)
    async with open_peer_service() as peers, open_local_server(options, peers=peers) as server:
        offer = await peers.create_offer()
        async with trio.open_nursery() as nursery:
            net = MemoryNetwork(server, nursery)
            body = {"content": offer.local_sdp, "headers": {"content-type": "application/sdp"}}
            created = await net.http.post(f"{server.base_url}/realtime/calls", **body)  # type: ignore[arg-type]
            call = call_id_of(created)
            start = trio.current_time()
            async with (
                open_socket(direct(server), {}, open_stream=net.open_stream) as plain,
                open_socket(sideband(server, call), {}, open_stream=net.open_stream) as side,
            ):
                await session_update(side)
                assert valid(await plain.receive())["type"] == "session.created"
                plain_end = await closed_with(plain)
                plain_at = trio.current_time() - start
                side_end = await closed_with(side)
            await server.record.wait_until(lambda: call not in server.open_calls)
            nursery.cancel_scope.cancel()
        await net.http.aclose()
        await offer.aclose()
    message = "Your session hit the maximum duration of 60 minutes."
    assert (plain_end.code, plain_end.reason) == (1001, message)
    assert (side_end.code, side_end.reason) == (1001, message)
    assert 3600 <= plain_at < 3601
    assert server.record.calls[0].end == "session_expired"


# --- media ---------------------------------------------------------------------------------------------------------


async def test_a_call_whose_peer_never_connects_ends_after_call_connect_seconds(
    peers: PeerService, offer_sdp: str
) -> None:
    options = ServerOptions(delta_interval=0.0, call_connect_seconds=0.5)
    async with open_local_server(options, peers=peers) as server:
        before = peers.open_peers
        with trio.fail_after(10):
            start = trio.current_time()
            call = call_id_of(await create_call(server, offer_sdp))
            async with open_socket(sideband(server, call), {}) as sock:
                await session_update(sock)
                end = await closed_with(sock)  # the call ended under its sideband
            await server.record.wait_until(lambda: call not in server.open_calls)
            elapsed = trio.current_time() - start
            assert_not_found(await hang_up(server, call))
        assert peers.open_peers == before
    assert isinstance(end, SocketEnd)
    assert 0.45 <= elapsed < 3.0
    assert server.record.calls[0].end == "media_timeout"
    assert server.record.sidebands()[0].end == "call_ended"


async def test_a_call_ends_when_its_media_peer_goes_away() -> None:
    """A call no sideband ever joined ends when the caller closes its peer connection (no calls pile up), even when
    a data-channel message reaches the caller while it closes (it once killed aiortc's DTLS task, so no
    close_notify went out)."""
    async with open_peer_service(loopback=True) as peers:
        options = ServerOptions(delta_interval=0.0, greeting_ms=0)
        async with open_local_server(options, peers=peers) as server:
            with trio.fail_after(15):
                caller = await peers.create_offer()
                created = await create_call(server, caller.local_sdp)
                await caller.apply_answer(created.text)
                await caller.connected.wait()
                call = call_id_of(created)
                await server.record.wait_until(lambda: server.record.calls[0].connected)
                assert server.open_calls == [call]
                closed_at = trio.current_time()
                await caller.aclose()  # DTLS close_notify: the server learns at once (ICE consent would take ~30 s)
                await server.record.wait_until(lambda: call not in server.open_calls)
                assert trio.current_time() - closed_at < 5.0
                assert_not_found(await hang_up(server, call))
            assert peers.open_peers == 0
    assert server.record.calls[0].end == "media_closed"
    assert server.record.sidebands() == []


async def test_a_session_built_from_the_call_keeps_its_settings_for_every_sideband(
    server: LocalServer, offer_sdp: str
) -> None:
    """The session a call was created with is what the first sideband's ``session.updated`` builds on."""
    with trio.fail_after(10):
        call = call_id_of(await create_call(server, offer_sdp, SessionConfig(instructions="from the call")))
        async with open_socket(sideband(server, call), {}) as sock:
            updated = await session_update(sock)
        assert updated["session"]["instructions"] == "from the call"
        assert updated["session"]["id"] == session_id_of_call(call)
