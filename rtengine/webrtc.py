"""rtengine as the WebRTC media peer: audio over RTP, control over the sideband, one call id.

::

    async with rtengine.webrtc.open_media_engine() as engine:            # the one trio-asyncio loop
        media = rtengine.webrtc.Media(engine, source=rtengine.webrtc.tone_source(440, seconds=3))
        async with rtengine.open_conversation(client, session, media=media) as conv:
            async for pcm in conv.media.audio_out:                       # PCM16 mono 24 kHz, 20 ms frames
                ...

rtengine creates the offer (``iceServers=[]`` unless given, max-bundle, one sendrecv audio transceiver, the
``oai-events`` data channel), creates the call, and returns as soon as the answer is in hand; applying the answer,
reaching "connected" (bounded by ``connect_timeout``, with a clear error when ICE/DTLS never completes), feeding
the source and draining the remote audio all run in the conversation's nursery, like the sideband join. Audio at
this boundary is PCM16 mono at 24 kHz. Everything asyncio stays inside ``rtengine._peer``.
"""

from __future__ import annotations

import logging
import wave
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx
import trio

from ._client import RealtimeClient
from .adapters._peer import FRAME_BYTES, SAMPLE_RATE, PcmTrack, Peer, PeerService, open_peer_service
from .protocol._audio import tone
from .protocol._errors import ConfigError
from .protocol._util import collapse_single_group

log = logging.getLogger("rtengine.webrtc")

__all__ = [
    "SAMPLE_RATE",
    "Media",
    "MediaEngine",
    "PrewarmPool",
    "WavWriter",
    "open_media_engine",
    "open_prewarm_pool",
    "tone_source",
    "wav_source",
]

#: The media engine is the peer service: one trio-asyncio loop, every peer connection tracked and closed.
MediaEngine = PeerService

#: Frames buffered on ``conv.media.audio_out`` before new ones are dropped (and counted): 10 s.
AUDIO_OUT_CAPACITY: Final = 500


@asynccontextmanager
async def open_media_engine(*, loopback: bool = False) -> AsyncIterator[MediaEngine]:
    """Open the media engine (the trio-asyncio loop, once) for the duration of the block.

    ``loopback=True`` pins ICE host candidates to 127.0.0.1 — hermetic tests and demos on one machine; leave it off
    to talk to a real provider. Leaving the block closes every peer connection, shielded and bounded.
    """
    async with open_peer_service(loopback=loopback) as engine:
        yield engine


async def tone_source(
    frequency: float = 440.0, seconds: float = 3.0, *, amplitude: float = 0.3
) -> AsyncIterator[bytes]:
    """A sine tone as 20 ms PCM16 frames (the media pump paces them in real time)."""
    pcm = tone(frequency, round(seconds * 1000), amplitude=amplitude)
    for start in range(0, len(pcm), FRAME_BYTES):
        yield pcm[start : start + FRAME_BYTES]


async def wav_source(path: str | Path) -> AsyncIterator[bytes]:
    """The frames of a WAV file: 16-bit PCM, mono, 24 kHz (the realtime format); anything else is rejected."""
    with wave.open(str(path), "rb") as wav:
        if (wav.getsampwidth(), wav.getnchannels(), wav.getframerate()) != (2, 1, SAMPLE_RATE):
            raise ConfigError(
                f"{path}: expected 16-bit mono {SAMPLE_RATE} Hz WAV, got {8 * wav.getsampwidth()}-bit "
                f"{wav.getnchannels()} channel(s) at {wav.getframerate()} Hz"
            )
        while chunk := wav.readframes(FRAME_BYTES // 2):
            yield chunk
            await trio.lowlevel.checkpoint()


class WavWriter:
    """Writes received audio (PCM16 mono 24 kHz) to a WAV file. Use as the ``sink`` of :class:`Media`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self.frames = 0

    def __call__(self, pcm16: bytes) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - open for the writer's lifetime; see close()
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(SAMPLE_RATE)
        self._wav.writeframes(pcm16)
        self.frames += 1

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None


@dataclass
class Media:
    """Make rtengine the media peer of a WebRTC conversation (pass as ``open_conversation(..., media=…)``).

    ``source``: audio to send (an async iterable of PCM16 mono 24 kHz chunks: :func:`tone_source`,
    :func:`wav_source`, or the app's own); besides it, ``conv.media.play(pcm)`` queues audio directly.
    ``sink``: a callable receiving each decoded 20 ms frame (e.g. a :class:`WavWriter`); by default frames go to
    ``conv.media.audio_out``. ``connect_timeout``: the deadline on reaching "connected" (ICE + DTLS), after which
    the conversation ends with a clear error. ``ice_servers``: STUN/TURN URLs (none by default: the realtime API is
    ICE-lite and an unreachable STUN server costs 5 s of gathering). ``data_channel=True`` keeps what arrives on the
    call's ``oai-events`` data channel for the app, on ``conv.media.peer.messages`` (JSON text: the same server
    events the sideband delivers as ``conv.events``); by default those messages are read off and only counted, in
    ``conv.media.data_messages``, so a long call holds no backlog of them.
    """

    engine: MediaEngine
    source: AsyncIterable[bytes] | None = None
    sink: Callable[[bytes], None] | None = None
    connect_timeout: float = 10.0
    ice_servers: Sequence[str] = field(default_factory=tuple)
    pool: PrewarmPool | None = None
    data_channel: bool = False

    def __post_init__(self) -> None:
        if self.connect_timeout <= 0:
            raise ConfigError("connect_timeout must be > 0")


class PrewarmPool:
    """Keeps one spare offering peer, already gathered, so the next WebRTC conversation's offer costs nothing.

    Use through :func:`open_prewarm_pool` and pass as ``Media(engine, pool=pool)``. A spare is handed out once
    (:meth:`take`) and never comes back: a used or cancelled peer is never reused. A spare older than ``max_age``
    is closed and replaced (its candidates may be stale). With ``client``, the pool also keeps that client's HTTP
    connection to the provider warm (a cheap request every ``keepalive`` seconds), so the call-creation POST does
    not pay for TCP and TLS.
    """

    def __init__(self, engine: MediaEngine, *, max_age: float = 30.0, ice_servers: Sequence[str] = ()) -> None:
        if max_age <= 0:
            raise ConfigError("max_age must be > 0")
        self.engine = engine
        self.max_age = max_age
        self.ice_servers = tuple(ice_servers)
        self._spare: tuple[Peer, PcmTrack, float] | None = None
        self._handed: Peer | None = None
        self._taken = trio.Event()
        self._ready = trio.Event()
        self.created = 0
        self.handed_out = 0
        self.expired = 0

    def refill(self) -> None:
        """Start making the next spare (idempotent)."""
        self._taken.set()

    async def wait_ready(self) -> None:
        """Return once a spare is available."""
        await self._ready.wait()

    def take(self) -> tuple[Peer, PcmTrack] | None:
        """The spare (peer, track), if there is a fresh one. The next spare is made after :meth:`refill` — the
        engine calls it once the call's answer is in, so gathering a new peer never competes with the POST."""
        spare, self._spare = self._spare, None
        self._ready = trio.Event()
        if spare is None:
            self._taken.set()
            return None
        peer, track, born = spare
        if peer.closed or trio.current_time() - born > self.max_age:
            self._taken.set()
            return None  # stale: the keeper closes it
        self._handed = peer
        self.handed_out += 1
        return peer, track

    async def _keep(self, task_status: trio.TaskStatus[None]) -> None:
        started = False
        while True:
            track = self.engine.new_track()
            peer = await self.engine.create_offer(ice_servers=self.ice_servers, source=track)
            self._spare = (peer, track, trio.current_time())
            self.created += 1
            self._taken = trio.Event()
            self._ready.set()
            if not started:
                started = True
                task_status.started()
            with trio.move_on_after(self.max_age):
                await self._taken.wait()
            if self._handed is not peer:  # expired, or refused as stale by take(): never reused
                if self._spare is not None and self._spare[0] is peer:
                    self._spare = None
                self.expired += 1
                await peer.aclose()

    async def _warm(self, client: RealtimeClient, keepalive: float) -> None:
        url = client.calls_url.rsplit("/realtime/calls", 1)[0] + "/models"
        while True:
            try:
                await client.http().get(url, headers=dict(client.auth_headers()))
            except httpx.HTTPError as exc:  # a warm-up that fails costs nothing but the next POST's handshake
                log.debug("connection warm-up failed: %s", exc)
            await trio.sleep(keepalive)

    async def aclose(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare[0].aclose()


@asynccontextmanager
async def open_prewarm_pool(
    engine: MediaEngine,
    *,
    client: RealtimeClient | None = None,
    max_age: float = 30.0,
    keepalive: float = 2.0,
    ice_servers: Sequence[str] = (),
) -> AsyncIterator[PrewarmPool]:
    """Run a :class:`PrewarmPool` for the duration of the block (its tasks live in a nursery of this block).

    The first spare is ready when the block starts. Leaving the block closes the spare, shielded and bounded.
    """
    pool = PrewarmPool(engine, max_age=max_age, ice_servers=ice_servers)
    with collapse_single_group():
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(pool._keep)
                if client is not None:
                    nursery.start_soon(pool._warm, client, keepalive)
                yield pool
            finally:
                nursery.cancel_scope.cancel()
                with trio.CancelScope(shield=True):
                    await pool.aclose()
