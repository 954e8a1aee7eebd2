"""Adversarial review of session 9 (rev9), server side: a ``response.create`` answered before the next client event
is read (on a sideband, under frames that arrive in one write), and ``Faults(drop_sideband_on=TYPE)`` (findings 6
and 7, fixed). Every event the server sends here is checked against the ``openai`` package's types by the
suite-wide fixture."""

import json
from typing import Any

import pytest
import trio
from engine_helpers import data_channel_call
from helpers import call_id_of, create_call, loads, read_until, sideband

from rtengine.adapters._ws import RealtimeSocket, open_socket
from rtengine.adapters._ws_frames import text_frame
from rtengine.protocol import SocketEnd
from rtengine.protocol._payloads import encode, response_create, user_text
from rtengine.server import Faults, LocalServer


async def _one_write(sock: RealtimeSocket, *events: dict[str, Any]) -> None:
    """Send ``events`` in one TCP write: the server reads them all at once (a fast client)."""
    await sock._stream.send_all(b"".join(text_frame(encode(event)) for event in events))


async def _rest(sock: RealtimeSocket) -> list[dict[str, Any]]:
    """Every server event until the socket ends."""
    seen = []
    while not isinstance(frame := await sock.receive(), SocketEnd):
        seen.append(loads(frame))
    return seen


async def test_a_create_and_a_cancel_in_one_write_on_a_sideband_are_answered_in_order(
    server: LocalServer, offer_sdp: str
) -> None:
    """No finding: the create is announced before the cancel is read, so the cancel names an active response and
    cancels it (no ``response_cancel_not_active``); a second create in the same write is refused as the API does."""
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        async with open_socket(sideband(server, call_id), {}) as sock:
            await sock.send(encode(user_text("hi")))
            await read_until(sock, "conversation.item.done")
            await _one_write(
                sock,
                {"type": "response.create", "event_id": "evt_create"},
                {"type": "response.create", "event_id": "evt_again"},
                {"type": "response.cancel", "event_id": "evt_cancel"},
            )
            seen = await read_until(sock, "response.done")
    kinds = [event["type"] for event in seen]
    assert kinds[0] == "response.created"
    errors = [event["error"] for event in seen if event["type"] == "error"]
    assert [(e["code"], e["event_id"]) for e in errors] == [("conversation_already_has_active_response", "evt_again")]
    assert seen[-1]["response"]["status"] == "cancelled"
    assert seen[-1]["response"]["id"] == seen[0]["response"]["id"]


async def test_a_1011_drop_on_a_client_frame_waits_for_the_clients_close_reply(
    server: LocalServer, offer_sdp: str
) -> None:
    """Finding 6: the reader returned right after sending CLOSE 1011, so the client's reply was never read
    (``close_answered`` None) and the TCP closed under it, unlike a 1011 after N server events."""
    with trio.fail_after(10):
        call_id = call_id_of(await create_call(server, offer_sdp))
        server.set_faults(Faults(drop_sideband="1011", drop_sideband_on="response.create"))
        async with open_socket(sideband(server, call_id), {}) as sock:
            await _one_write(
                sock, user_text("before the drop"), response_create(), user_text("after the drop, in the same write")
            )
            seen = await _rest(sock)
        with trio.move_on_after(3):  # the reply is recorded as the server reads it
            await server.record.wait_until(lambda: server.record.joins(call_id)[0].close_answered is not None)
    assert sock.end is not None
    assert (sock.end.clean, sock.end.code) == (True, 1011)
    assert [event["type"] for event in seen] == ["conversation.item.added", "conversation.item.done"]
    (first,) = server.record.joins(call_id)
    assert (first.end, first.close_code, first.close_answered) == ("server_close", 1011, True)
    assert first.types_in() == ["conversation.item.create"]  # neither the create nor what followed it was read


def test_drop_sideband_on_names_a_client_event_type_the_api_has() -> None:
    """Finding 7: a misspelt type was accepted, and the fault silently never fired."""
    with pytest.raises(ValueError, match=r"drop_sideband_on must be a client event type.*response\.create"):
        Faults(drop_sideband="reset", drop_sideband_on="response.craete")


async def test_a_create_on_a_calls_data_channel_is_answered_before_the_next_event() -> None:
    """No finding: on a call's ``oai-events`` data channel, a ``response.create`` and a retrieve of an unknown item
    right behind it: the create's ``response.created`` goes out before the retrieve's ``error``. (This order also
    holds without the server's wait for the announcement: the inbox's receive lets the response's task run first;
    the sideband test above is the one that fails without it.)"""
    next_event = {"type": "conversation.item.retrieve", "item_id": "item_none", "event_id": "evt_next"}
    with trio.fail_after(30):
        async with data_channel_call() as (server, _, peer):
            record = server.record.calls[-1]
            for event in ({"type": "response.create"}, next_event):
                assert peer.send_data(json.dumps(event))

            def answered() -> bool:
                return "error" in _types(record.data_frames_out)

            await server.record.wait_until(answered)
    kinds = _types(record.data_frames_out)
    assert "response.created" in kinds
    assert kinds.index("response.created") < kinds.index("error")
    error = next(f for f in record.data_frames_out if isinstance(f, dict) and f["type"] == "error")
    assert error["error"]["event_id"] == "evt_next"


def _types(frames: list[Any]) -> list[str]:
    return [f["type"] for f in frames if isinstance(f, dict)]
