"""A re-dialing conversation (rtengine the media peer) whose first sideband join is refused: the join failure ends
the conversation as on any other transport — ``Error("sideband_join_failed")`` then ``Closed("error")`` — never a
``RuntimeError`` out of the re-dialing job (real loopback: ICE, DTLS, websockets)."""

from collections.abc import AsyncIterator

import pytest
import trio
from engine_helpers import client_for, drain, ends, serving

import rtengine
from rtengine import webrtc
from rtengine.events import Error, Started
from rtengine.server import Faults

SESSION = rtengine.SessionConfig(turn_detection="disabled", instructions="refused join")


@pytest.fixture
async def engine() -> AsyncIterator[webrtc.MediaEngine]:
    async with webrtc.open_media_engine(loopback=True) as media_engine:
        yield media_engine


async def test_a_refused_first_join_in_the_background_is_an_error_then_closed(engine: webrtc.MediaEngine) -> None:
    media = webrtc.Media(engine, connect_timeout=5)
    with trio.fail_after(30):
        async with (
            serving(engine, faults=Faults(websocket_status=500)) as server,
            client_for(server, sideband_retries=1) as client,
            rtengine.open_conversation(client, SESSION, media=media) as conv,
        ):
            events = await drain(conv)
    assert isinstance(events[0], Started)
    endings = [(type(e).__name__, e.code if isinstance(e, Error) else getattr(e, "reason", None)) for e in ends(events)]
    assert endings == [("Error", "sideband_join_failed"), ("Closed", "error")]
    assert len(server.record.connections) == 2  # the join and its one retry, then no more


async def test_a_refused_first_join_inline_raises_the_join_error(engine: webrtc.MediaEngine) -> None:
    media = webrtc.Media(engine, connect_timeout=5)
    with trio.fail_after(30):
        async with (
            serving(engine, faults=Faults(websocket_status=500)) as server,
            client_for(server, sideband_retries=0) as client,
        ):
            with pytest.raises(rtengine.ConnectFailed) as info:
                async with rtengine.open_conversation(client, SESSION, media=media, sideband="inline"):
                    raise AssertionError("must not start")
    assert info.value.status == 500
