"""The aiortc bridge: the only module in rtengine that touches asyncio (through trio-asyncio). It holds the peer
connections, the service that owns them and the paced outbound track; :mod:`~rtengine.adapters._pcm_track` makes
that track's frames (aiortc, no asyncio).

Theory of operation. :func:`open_peer_service` opens the trio-asyncio loop **once**, as a long-lived service
owned by the caller's ``async with``; every aiortc coroutine is awaited from trio through ``aio_as_trio``.
aiortc's events (connection state, remote track, data channel open/message) arrive as plain callbacks that only
set trio events, record a timestamp, or ``send_nowait`` into a bounded trio channel (dropping and counting when
full): no asyncio task is ever created here. Peer connections are created through the service, which tracks
them, and every one is closed from trio inside a shielded, deadline-bounded scope — by its owner
(:meth:`Peer.aclose`) or, as a last resort, when the service closes. aiortc and SDP failures are translated into
:class:`~rtengine.InvalidSdp` at exactly one place (:func:`_translate`).

Media at the boundary is PCM16 mono at 24 kHz (the GA ``audio/pcm`` format), in 20 ms frames:
:class:`PcmTrack` (its frames made by :class:`~rtengine.adapters._pcm_track.PcmSource`) is an outbound track fed
from trio, and :meth:`Peer.receive_audio` decodes the remote track into the same format.

Defaults that matter (measured): ``RTCConfiguration(iceServers=[])`` — aiortc's implicit Google STUN
server costs 5 s of gathering offline; ``bundlePolicy=max-bundle`` — one transport to gather. ``loopback=True``
pins host candidates to 127.0.0.1 (aioice skips loopback otherwise) for hermetic tests and demos.

Cancellation: a cancelled offer/answer closes the half-built peer connection (a cancelled gathering poisons
it) and re-raises ``Cancelled``. Leaving the service closes every peer that is still open.

Errors of aiortc's own background tasks: trio-asyncio's default handler re-raises any asyncio error it is told
about into the loop's nursery, which would take the whole service — every call on it — down. aiortc routinely
leaves one behind: a peer connection closed while its connect task is still running (a hangup right after
"connected") ends that task with ``InvalidStateError``, "never retrieved". The service installs its own
handler (:func:`_background_error_handler`): every such error is counted in ``PeerService.background_errors``;
``InvalidStateError`` after a close is expected and logged at INFO, anything else at ERROR with its traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import aioice.ice
import aiortc
import av
import trio
import trio_asyncio
from aiortc.mediastreams import MediaStreamError

from ..protocol._errors import InvalidSdp, RealtimeError
from ..protocol._util import collapse_single_group
from ._pcm_track import FRAME_BYTES, SAMPLE_RATE, PcmSource

__all__ = [
    "DATA_CHANNEL_LABEL",
    "FRAME_BYTES",
    "SAMPLE_RATE",
    "Peer",
    "PcmTrack",
    "PeerService",
    "open_peer_service",
]

log = logging.getLogger("rtengine.peer")

#: The data channel OpenAI's realtime calls use for events.
DATA_CHANNEL_LABEL: Final = "oai-events"
#: Data-channel messages a peer holds for its reader. A burst (history seeding: a thousand
#: ``conversation.item.create`` at once) must fit: its reader applies backpressure only once they are here.
MESSAGE_BUFFER: Final = 4096
#: Upper bound on closing one peer connection.
PEER_CLOSE_TIMEOUT: Final = 2.0


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """The one place where aiortc/SDP exceptions become rtengine errors."""
    try:
        yield
    except RealtimeError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        AssertionError,  # aiortc's SDP parser asserts on lines it cannot take (e.g. "m=audio x")
        aiortc.exceptions.InvalidStateError,
    ) as exc:
        raise InvalidSdp(f"{what} failed: {type(exc).__name__}: {exc}") from exc
    except asyncio.CancelledError as exc:
        # asyncio-side cancellation of our own operation (never a trio cancellation).
        raise RealtimeError(f"{what} was cancelled on the asyncio side") from exc


def _aio(fn: Callable[..., Any]) -> Callable[..., Any]:
    return trio_asyncio.aio_as_trio(fn)  # type: ignore[no-any-return]


class PcmTrack(PcmSource):
    """The outbound track: a :class:`~rtengine.adapters._pcm_track.PcmSource` that aiortc pulls every 20 ms, paced
    on the loop's clock (trio's, through trio-asyncio)."""

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_event_loop()
        if (wait := self._due_in(loop.time())) > 0:
            await asyncio.sleep(wait)
        return self._next_frame(loop.time())


class Peer:
    """One aiortc ``RTCPeerConnection`` owned from trio. ``local_sdp`` is the offer or answer it produced.

    ``times`` records trio timestamps of ``ice_connected``, ``dtls_connected``, ``data_channel_open``,
    ``first_audio_received``; the matching trio events (``ice_connected``, ``connected``, ``channel_open``,
    ``remote_track_ready``, ``failed``) let trio code wait for them. Data-channel messages (``str``, or ``bytes``
    for a binary message) arrive on ``messages`` (bounded by ``MESSAGE_BUFFER``: aiortc hands them over in a
    callback, which cannot wait, so beyond that they are dropped and counted in ``messages_dropped``).
    """

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
        self.source: PcmTrack | None = None
        self.remote_track: aiortc.MediaStreamTrack | None = None
        self.times: dict[str, float] = {}
        self.ice_connected = trio.Event()
        self.connected = trio.Event()
        self.failed = trio.Event()
        self.channel_open = trio.Event()
        self.remote_track_ready = trio.Event()
        self._channel: aiortc.RTCDataChannel | None = None
        self._messages_tx, self.messages = trio.open_memory_channel[str | bytes](MESSAGE_BUFFER)
        self.messages_dropped = 0
        self.frames_received = 0
        pc.on("connectionstatechange", self._on_connection_state)
        pc.on("iceconnectionstatechange", self._on_ice_state)
        pc.on("track", self._on_track)
        pc.on("datachannel", self._attach_channel)

    def __repr__(self) -> str:
        state = "closed" if self.closed else self._pc.connectionState
        return f"<Peer {self.role} {state}>"

    # --- aiortc callbacks (sync; they only touch trio primitives that never block) ---------------------------

    def _mark(self, name: str) -> None:
        self.times.setdefault(name, trio.current_time())

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._mark("dtls_connected")
            self.connected.set()
        elif state in ("failed", "closed"):
            self.failed.set()

    def _on_ice_state(self) -> None:
        if self._pc.iceConnectionState in ("connected", "completed"):
            self._mark("ice_connected")
            self.ice_connected.set()

    def _on_track(self, track: aiortc.MediaStreamTrack) -> None:
        if track.kind == "audio" and self.remote_track is None:
            self.remote_track = track
            self.remote_track_ready.set()

    def _attach_channel(self, channel: aiortc.RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL:
            return
        self._channel = channel

        def opened() -> None:
            self._mark("data_channel_open")
            self.channel_open.set()

        def message(data: str | bytes) -> None:
            try:
                self._messages_tx.send_nowait(data)
            except trio.WouldBlock:
                self.messages_dropped += 1
            except trio.ClosedResourceError:
                # Its owner closed the peer: nobody reads messages any more (not a drop for want of room). Raising
                # here would kill aiortc's DTLS task, which then ends without sending close_notify, and the remote
                # side would learn of the close only when ICE consent fails (~30 s).
                return

        channel.on("open", opened)
        channel.on("message", message)
        if channel.readyState == "open":
            opened()

    # --- trio side -------------------------------------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def ice_gathering_state(self) -> str:
        return str(self._pc.iceGatheringState)

    def send_data(self, message: str | bytes) -> bool:
        """Send a message (text, or ``bytes`` as a binary message) on the ``oai-events`` channel; False when it
        is not open (nothing is sent)."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return False
        channel.send(message)
        return True

    async def apply_answer(self, answer_sdp: str) -> None:
        """Apply the remote answer (offerer side); raises :class:`~rtengine.InvalidSdp` when unusable."""
        with _translate("applying the SDP answer"):
            await _aio(self._pc.setRemoteDescription)(aiortc.RTCSessionDescription(answer_sdp, "answer"))

    async def receive_audio(self, deliver: Callable[[bytes], None]) -> None:
        """Decode the remote audio track into PCM16 mono 24 kHz and hand each frame to ``deliver`` until the track
        ends. Draining matters: aiortc queues remote frames without bound. Cancellation: stops at once; the
        track stays usable."""
        await self.remote_track_ready.wait()
        track = self.remote_track
        assert track is not None
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        while True:
            try:
                frame = await _aio(track.recv)()
            except MediaStreamError:
                return
            for out in resampler.resample(frame):
                self.frames_received += 1
                self._mark("first_audio_received")
                deliver(bytes(out.planes[0])[: out.samples * 2])

    async def aclose(self) -> None:
        """Close the peer connection. Idempotent, shielded, bounded by ``PEER_CLOSE_TIMEOUT``.

        Cancellation: runs to completion (or the deadline) even inside a cancelled scope.
        """
        if self.closed:
            return
        self.closed = True
        self._service._peers.discard(self)
        self._messages_tx.close()
        if self.source is not None:
            self.source.stop()
        with trio.CancelScope(shield=True), trio.move_on_after(PEER_CLOSE_TIMEOUT) as scope:
            await _aio(self._pc.close)()
        if scope.cancelled_caught:
            log.warning("closing a %s peer connection took longer than %.1f s", self.role, PEER_CLOSE_TIMEOUT)


class PeerService:
    """Creates and tracks peer connections on the one trio-asyncio loop. Obtain with :func:`open_peer_service`."""

    def __init__(self, *, loopback: bool = False) -> None:
        self._peers: set[Peer] = set()
        self.open = True
        #: Host candidates are pinned to 127.0.0.1 (hermetic tests and demos).
        self.loopback = loopback
        #: Errors aiortc's background tasks left behind (logged; see the module docstring).
        self.background_errors = 0

    @property
    def open_peers(self) -> int:
        """How many peer connections are currently open."""
        return len(self._peers)

    def new_track(self, max_buffer_ms: int = 2000) -> PcmTrack:
        """A new outbound PCM16 track for :meth:`create_offer` or :meth:`answer`."""
        return PcmTrack(max_buffer_ms)

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

    async def create_offer(self, *, ice_servers: Sequence[str] = (), source: PcmTrack | None = None) -> Peer:
        """A new offering peer: one sendrecv audio transceiver (sending ``source``, if given) and the
        ``oai-events`` data channel, gathered. ``peer.times`` gets ``offer_created`` and ``ice_gathered``.

        Cancellation: the half-built peer is closed, then ``Cancelled`` propagates.
        """
        peer = self._new_peer("offerer", ice_servers)
        peer.source = source
        try:
            with _translate("creating an SDP offer"):
                peer._pc.addTransceiver(source if source is not None else "audio", direction="sendrecv")
                peer._attach_channel(peer._pc.createDataChannel(DATA_CHANNEL_LABEL))
                offer = await _aio(peer._pc.createOffer)()
                peer._mark("offer_created")
                await _aio(peer._pc.setLocalDescription)(offer)
                peer._mark("ice_gathered")
                peer.local_sdp = peer._pc.localDescription.sdp
        except BaseException:
            await peer.aclose()
            raise
        return peer

    async def answer(self, offer_sdp: str, *, ice_servers: Sequence[str] = (), source: PcmTrack | None = None) -> Peer:
        """A new answering peer for ``offer_sdp`` (sending ``source`` on the offered audio transceiver, if given);
        raises :class:`~rtengine.InvalidSdp` for an unusable offer.

        Cancellation: the half-built peer is closed, then ``Cancelled`` propagates.
        """
        peer = self._new_peer("answerer", ice_servers)
        peer.source = source
        try:
            with _translate("answering the SDP offer"):
                await _aio(peer._pc.setRemoteDescription)(aiortc.RTCSessionDescription(offer_sdp, "offer"))
                if source is not None:
                    for transceiver in peer._pc.getTransceivers():
                        if transceiver.kind == "audio":
                            transceiver.sender.replaceTrack(source)
                            transceiver.direction = "sendrecv"
                            break
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


def _background_error_handler(service: PeerService) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """The loop's exception handler: count and log instead of re-raising into the service's nursery."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        service.background_errors += 1
        exception = context.get("exception")
        message = context.get("message") or "unhandled error in an aiortc task"
        if isinstance(exception, aiortc.exceptions.InvalidStateError):
            log.info("aiortc task ended after its peer connection closed: %s (%s)", exception, message)
            return
        log.error("aiortc background error: %s", message, exc_info=exception)

    return handle


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


@contextmanager
def _pinned_to_loopback(enabled: bool) -> Iterator[None]:
    """While the service runs, aioice gathers 127.0.0.1 only (it skips loopback addresses otherwise)."""
    if not enabled:
        yield
        return
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = _loopback_addresses
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


@asynccontextmanager
async def open_peer_service(*, loopback: bool = False) -> AsyncIterator[PeerService]:
    """Open the trio-asyncio loop once and yield a :class:`PeerService` running on it.

    ``loopback=True`` pins the host candidates of every peer gathered in this process to 127.0.0.1 while the
    service runs (hermetic tests and demos; off by default). An exception raised in the body comes out as itself:
    trio-asyncio's nested nurseries would wrap it twice in exception groups, so a group holding exactly one
    exception is unwrapped. Cancellation: leaving the block (in any way) closes every open peer connection
    first, shielded and bounded.
    """
    with collapse_single_group(), _pinned_to_loopback(loopback):
        async with trio_asyncio.open_loop() as loop:
            service = PeerService(loopback=loopback)
            loop.set_exception_handler(_background_error_handler(service))
            try:
                yield service
            finally:
                await service.aclose()
