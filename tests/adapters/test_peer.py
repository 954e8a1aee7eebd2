"""The aiortc bridge: defaults that matter, translation of SDP failures, and cleanup on every exit."""

import asyncio

import aiortc.exceptions
import aiortc.sdp
import pytest
import trio
import trio_asyncio

from rtengine import InvalidSdp
from rtengine.adapters._peer import DATA_CHANNEL_LABEL, PeerService, open_peer_service


async def test_offer_has_one_audio_transceiver_and_the_events_channel(peers: PeerService) -> None:
    with trio.fail_after(10):
        peer = await peers.create_offer()
    try:
        parsed = aiortc.sdp.SessionDescription.parse(peer.local_sdp)
        assert [m.kind for m in parsed.media] == ["audio", "application"]
        assert parsed.media[0].direction == "sendrecv"
        assert parsed.group
        assert parsed.group[0].semantic == "BUNDLE"
        assert peer.ice_gathering_state == "complete"
        assert DATA_CHANNEL_LABEL == "oai-events"
    finally:
        await peer.aclose()
    assert peer.closed
    assert peers.open_peers == 0


async def test_default_configuration_has_no_stun_and_gathers_in_milliseconds(peers: PeerService) -> None:
    # aiortc's implicit STUN server would cost ~5 s of gathering with no network (stack-notes §2).
    with trio.fail_after(10):
        await peers.create_offer()  # first call pays lazy imports and crypto setup
        start = trio.current_time()
        peer = await peers.create_offer()
        elapsed = trio.current_time() - start
    assert peer.configuration.iceServers == []
    assert elapsed < 1.0, f"gathering took {elapsed:.3f} s: is a STUN server configured?"
    assert "srflx" not in peer.local_sdp


async def test_unusable_offer_is_invalid_sdp_and_leaves_no_peer(peers: PeerService) -> None:
    with trio.fail_after(10):
        with pytest.raises(InvalidSdp, match="answering the SDP offer failed"):
            await peers.answer("v=0\r\nm=audio 9 RTP/AVP 0\r\na=garbage\r\n")
    assert peers.open_peers == 0


async def test_cancelled_offer_closes_the_half_built_peer(peers: PeerService) -> None:
    with trio.fail_after(10):
        with trio.move_on_after(0.0005):
            await peers.create_offer()
    assert peers.open_peers == 0


async def test_service_exit_closes_open_peers_and_unwraps_errors() -> None:
    seen: list[PeerService] = []
    with pytest.raises(KeyError, match="boom"):  # noqa: PT012 - the whole block is under test
        async with open_peer_service() as service:
            seen.append(service)
            await service.create_offer()
            assert service.open_peers == 1
            raise KeyError("boom")
    assert seen[0].open_peers == 0
    assert not seen[0].open


async def test_a_background_asyncio_error_is_counted_and_logged_never_raised(
    peers: PeerService, caplog: pytest.LogCaptureFixture
) -> None:
    """trio-asyncio would re-raise it into the service and end every call on it; the service's handler logs it."""

    async def report(exception: BaseException) -> None:
        asyncio.get_running_loop().call_exception_handler(
            {"message": "Task exception was never retrieved", "exception": exception}
        )

    with trio.fail_after(10):
        await trio_asyncio.aio_as_trio(report)(aiortc.exceptions.InvalidStateError("RTCIceTransport is closed"))
        await trio_asyncio.aio_as_trio(report)(RuntimeError("a bug in a media task"))
        await trio.sleep(0.05)
        peer = await peers.create_offer()  # the service still works
        await peer.aclose()
    assert peers.background_errors == 2
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "rtengine.peer"]
    closed_late = "aiortc task ended after its peer connection closed: RTCIceTransport is closed"
    assert ("INFO", f"{closed_late} (Task exception was never retrieved)") in records
    assert ("ERROR", "aiortc background error: Task exception was never retrieved") in records
    caplog.clear()  # the ERROR above is the one this test provoked
