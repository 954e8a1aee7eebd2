"""The three seams through which the engine reaches the outside world, as structural types.

The engine imports no adapter: :class:`~rtengine.RealtimeClient` builds one adapter per seam (httpx, wsproto over
trio streams, aiortc through trio-asyncio) and hands them to the engine as an :class:`Endpoint`. A fake seam for a
test is a few lines. Every seam raises only :class:`~rtengine.RealtimeError` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import trio

    from ..protocol._calls import CallAnswer, CallBody
    from ..protocol._lifecycle import SocketEnd
    from ..protocol._session import SessionConfig

__all__ = ["CallService", "Endpoint", "PeerFactory", "PeerLike", "Socket", "SocketOpener", "TrackLike"]


class CallService(Protocol):
    """Call creation, SIP accept and refer, hang-up (``POST /realtime/calls``, ``…/{id}/accept|refer|hangup``)."""

    async def create(
        self, body: CallBody, headers: Mapping[str, str], *, on_sent: Callable[[], None] | None = None
    ) -> CallAnswer:
        """Create a call: the answer, or a :class:`~rtengine.CallError`/:class:`~rtengine.ConnectFailed`.

        ``on_sent`` runs once, when the body is on the wire (the engine builds the conversation meanwhile).
        Bounded as a whole. Cancellation after the body was sent: the answer is still read (bounded, shielded)
        and that call is hung up before ``Cancelled`` propagates, so no call is left behind.
        """
        ...

    async def accept(
        self,
        call_id: str,
        session: SessionConfig,
        headers: Mapping[str, str],
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Accept an incoming SIP call with ``session`` (``on_sent`` as in :meth:`create`). Raises
        :class:`~rtengine.CallError` (404 ``call_id_not_found`` included), :class:`~rtengine.InvalidCallId` or
        :class:`~rtengine.ConnectFailed`."""
        ...

    async def refer(self, call_id: str, target_uri: str, headers: Mapping[str, str]) -> None:
        """Transfer a SIP call to ``target_uri``; errors as :meth:`accept` (and :class:`~rtengine.ConfigError`
        for a bad URI)."""
        ...

    async def hangup(self, call_id: str, headers: Mapping[str, str]) -> None:
        """End a call. Raises :class:`~rtengine.CallError` (404 ``call_id_not_found`` included) or
        :class:`~rtengine.ConnectFailed`."""
        ...


class Socket(Protocol):
    """An open realtime websocket. One task receives; sends may come from several tasks (serialized)."""

    async def send(self, text: str) -> None:
        """Write one text frame. Raises :class:`~rtengine.ConnectionLost` once the socket is unusable."""
        ...

    async def receive(self) -> str | bytes | SocketEnd:
        """The next message, or a :class:`~rtengine.protocol.SocketEnd` once the connection ended (clean or not).

        Cancellation: nothing is lost; the socket stays usable."""
        ...

    def receive_nowait(self) -> str | bytes | None:
        """The next message if it is already at hand with no I/O, else None (then :meth:`receive` gets it, or how
        the connection ended). Not a checkpoint: a reader drains what one read brought in one wake-up."""
        ...


class SocketOpener(Protocol):
    """Opens websockets."""

    def open(self, url: str, headers: Mapping[str, str]) -> AbstractAsyncContextManager[Socket]:
        """A block holding an open socket. Entering raises :class:`~rtengine.ConnectFailed` (the whole opening
        bounded by the connect timeout). Leaving runs the close handshake (shielded, bounded by the close
        timeout, skipped when a frame was half written) and closes the stream, whatever ended the block."""
        ...


class TrackLike(Protocol):
    """The outbound audio track of a peer."""

    on_first_audio: Callable[[float], None] | None

    @property
    def audio_frames(self) -> int: ...
    @property
    def dropped_bytes(self) -> int: ...

    @property
    def buffered_ms(self) -> int: ...

    def push(self, pcm16: bytes) -> int: ...

    def room(self) -> int: ...


class PeerLike(Protocol):
    """A WebRTC peer connection, as the engine drives it (its events are trio events set by the adapter)."""

    @property
    def local_sdp(self) -> str: ...
    @property
    def times(self) -> Mapping[str, float]: ...
    @property
    def frames_received(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def connected(self) -> trio.Event: ...
    @property
    def failed(self) -> trio.Event: ...
    @property
    def channel_open(self) -> trio.Event: ...
    @property
    def messages(self) -> trio.MemoryReceiveChannel[str | bytes]: ...

    @property
    def connection_state(self) -> str: ...

    async def apply_answer(self, answer_sdp: str) -> None: ...

    async def receive_audio(self, deliver: Callable[[bytes], None]) -> None: ...

    async def aclose(self) -> None: ...


class PeerFactory(Protocol):
    """Creates offering peers (the media engine)."""

    def new_track(self) -> TrackLike: ...

    # ``source`` is the factory's own track type (what ``new_track`` made).
    async def create_offer(self, *, ice_servers: Sequence[str] = (), source: Any = None) -> PeerLike: ...


class Endpoint(Protocol):
    """What a conversation needs from its client: the seams and the settings (a :class:`~rtengine.RealtimeClient`)."""

    @property
    def calls(self) -> CallService: ...

    @property
    def sockets(self) -> SocketOpener: ...

    realtime_base_url: str
    sideband_retries: int
    #: Re-joins of a call's sideband after one loss (0: a loss ends the conversation), and their total deadline.
    sideband_rejoin_attempts: int
    sideband_rejoin_deadline: float
    backoff_base: float
    close_timeout: float
    rand: Callable[[], float]

    def auth_headers(self) -> Mapping[str, str]: ...

    def session_json(self, session: SessionConfig) -> str: ...
