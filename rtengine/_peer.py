"""The aiortc bridge: the only module in rtengine that touches asyncio (through trio-asyncio) or aiortc.

Theory of operation. :func:`open_peer_service` opens the trio-asyncio loop **once**, as a long-lived service
owned by the caller's ``async with``; every aiortc coroutine is awaited from trio through ``aio_as_trio``.
Peer connections are created through the service, which tracks them, and every one is closed from trio inside
a shielded, deadline-bounded scope — by its owner (:meth:`Peer.aclose`) or, as a last resort, when the service
closes. aiortc and SDP failures are translated into :class:`~rtengine.InvalidSdp` at exactly one place
(:func:`_translate`).

Defaults that matter (stack-notes §2): ``RTCConfiguration(iceServers=[])`` — aiortc's implicit Google STUN
server costs 5 s of gathering offline; ``bundlePolicy=max-bundle`` — one transport to gather.

Cancellation: a cancelled offer/answer closes the half-built peer connection (a cancelled gathering poisons
it) and re-raises ``Cancelled``. Leaving the service closes every peer that is still open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import aiortc
import trio
import trio_asyncio

from ._errors import InvalidSdp, RealtimeError
from ._util import collapse_single_group

__all__ = ["DATA_CHANNEL_LABEL", "Peer", "PeerService", "open_peer_service"]

log = logging.getLogger("rtengine.peer")

#: The data channel OpenAI's realtime calls use for events.
DATA_CHANNEL_LABEL: Final = "oai-events"
#: Upper bound on closing one peer connection.
PEER_CLOSE_TIMEOUT: Final = 2.0


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """The one place where aiortc/SDP exceptions become rtengine errors."""
    try:
        yield
    except RealtimeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, aiortc.exceptions.InvalidStateError) as exc:
        raise InvalidSdp(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    except asyncio.CancelledError as exc:
        # asyncio-side cancellation of our own operation (never a trio cancellation).
        raise RealtimeError(f"{what} was cancelled on the asyncio side") from exc


def _aio(fn: Callable[..., Any]) -> Callable[..., Any]:
    return trio_asyncio.aio_as_trio(fn)  # type: ignore[no-any-return]


class Peer:
    """One aiortc ``RTCPeerConnection`` owned from trio. ``local_sdp`` is the offer or answer it produced."""

    def __init__(
        self, service: PeerService, pc: aiortc.RTCPeerConnection, role: str, configuration: aiortc.RTCConfiguration
    ) -> None:
        self._service = service
        self._pc = pc
        #: The configuration the peer connection was built with (``iceServers`` is empty by default).
        self.configuration = configuration
        self.role = role
        self.local_sdp: str = ""
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._pc.connectionState
        return f"<Peer {self.role} {state}>"

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def ice_gathering_state(self) -> str:
        return str(self._pc.iceGatheringState)

    async def aclose(self) -> None:
        """Close the peer connection. Idempotent, shielded, bounded by ``PEER_CLOSE_TIMEOUT``.

        Cancellation: runs to completion (or the deadline) even inside a cancelled scope.
        """
        if self.closed:
            return
        self.closed = True
        self._service._peers.discard(self)
        with trio.CancelScope(shield=True), trio.move_on_after(PEER_CLOSE_TIMEOUT) as scope:
            await _aio(self._pc.close)()
        if scope.cancelled_caught:
            log.warning("closing a %s peer connection took longer than %.1f s", self.role, PEER_CLOSE_TIMEOUT)


class PeerService:
    """Creates and tracks peer connections on the one trio-asyncio loop. Obtain with :func:`open_peer_service`."""

    def __init__(self) -> None:
        self._peers: set[Peer] = set()
        self.open = True

    @property
    def open_peers(self) -> int:
        """How many peer connections are currently open."""
        return len(self._peers)

    def _new_peer(self, role: str, ice_servers: Sequence[str]) -> Peer:
        if not self.open:
            raise RealtimeError("the peer service is closed")
        config = aiortc.RTCConfiguration(
            iceServers=[aiortc.RTCIceServer(urls=url) for url in ice_servers],
            bundlePolicy=aiortc.RTCBundlePolicy.MAX_BUNDLE,
        )
        peer = Peer(self, aiortc.RTCPeerConnection(configuration=config), role, config)
        self._peers.add(peer)
        return peer

    async def create_offer(self, *, ice_servers: Sequence[str] = ()) -> Peer:
        """A new offering peer: one sendrecv audio transceiver and the ``oai-events`` data channel, gathered.

        Cancellation: the half-built peer is closed, then ``Cancelled`` propagates.
        """
        peer = self._new_peer("offerer", ice_servers)
        try:
            with _translate("creating an SDP offer"):
                peer._pc.addTransceiver("audio", direction="sendrecv")
                peer._pc.createDataChannel(DATA_CHANNEL_LABEL)
                offer = await _aio(peer._pc.createOffer)()
                await _aio(peer._pc.setLocalDescription)(offer)
                peer.local_sdp = peer._pc.localDescription.sdp
        except BaseException:
            await peer.aclose()
            raise
        return peer

    async def answer(self, offer_sdp: str, *, ice_servers: Sequence[str] = ()) -> Peer:
        """A new answering peer for ``offer_sdp``; raises :class:`~rtengine.InvalidSdp` for an unusable offer.

        Cancellation: the half-built peer is closed, then ``Cancelled`` propagates.
        """
        peer = self._new_peer("answerer", ice_servers)
        try:
            with _translate("answering the SDP offer"):
                await _aio(peer._pc.setRemoteDescription)(aiortc.RTCSessionDescription(offer_sdp, "offer"))
                answer = await _aio(peer._pc.createAnswer)()
                await _aio(peer._pc.setLocalDescription)(answer)
                peer.local_sdp = peer._pc.localDescription.sdp
        except BaseException:
            await peer.aclose()
            raise
        return peer

    async def aclose(self) -> None:
        """Close every peer still open. Shielded and bounded per peer."""
        self.open = False
        for peer in list(self._peers):
            await peer.aclose()


@asynccontextmanager
async def open_peer_service() -> AsyncIterator[PeerService]:
    """Open the trio-asyncio loop once and yield a :class:`PeerService` running on it.

    An exception raised in the body comes out as itself: trio-asyncio's nested nurseries would wrap it twice
    in exception groups, so a group holding exactly one exception is unwrapped. Cancellation: leaving the
    block (in any way) closes every open peer connection first, shielded and bounded.
    """
    with collapse_single_group():
        async with trio_asyncio.open_loop():
            service = PeerService()
            try:
                yield service
            finally:
                await service.aclose()
