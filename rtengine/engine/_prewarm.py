"""``PrewarmPool``: a spare offering peer, already gathered, so the next WebRTC conversation's offer costs nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import trio

from ..protocol._errors import ConfigError

if TYPE_CHECKING:
    from ._seams import PeerFactory, PeerLike, TrackLike

__all__ = ["PrewarmPool", "Warmable", "open_prewarm_pool"]


class Warmable(Protocol):
    """A client that can keep its connection to the provider warm (``RealtimeClient.warm_up``)."""

    async def warm_up(self) -> None: ...


class PrewarmPool:
    """Keeps one spare offering peer, already gathered, so the next WebRTC conversation's offer costs nothing.

    Use through :func:`open_prewarm_pool` and pass as ``Media(engine, pool=pool)``. A spare is handed out once
    (:meth:`take`) and never comes back: a used or cancelled peer is never reused. A spare older than ``max_age``
    is closed and replaced (its candidates may be stale). With ``client``, the pool also keeps that client's HTTP
    connection to the provider warm (a cheap request every ``keepalive`` seconds), so the call-creation POST does
    not pay for TCP and TLS.
    """

    def __init__(self, engine: PeerFactory, *, max_age: float = 30.0, ice_servers: Sequence[str] = ()) -> None:
        if max_age <= 0:
            raise ConfigError("max_age must be > 0")
        self.engine = engine
        self.max_age = max_age
        self.ice_servers = tuple(ice_servers)
        self._spare: tuple[PeerLike, TrackLike, float] | None = None
        self._handed: PeerLike | None = None
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

    def take(self) -> tuple[PeerLike, TrackLike] | None:
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

    async def _warm(self, client: Warmable, keepalive: float) -> None:
        while True:
            await client.warm_up()
            await trio.sleep(keepalive)

    async def aclose(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            await spare[0].aclose()


@asynccontextmanager
async def open_prewarm_pool(
    engine: PeerFactory,
    *,
    client: Warmable | None = None,
    max_age: float = 30.0,
    keepalive: float = 2.0,
    ice_servers: Sequence[str] = (),
) -> AsyncIterator[PrewarmPool]:
    """Run a :class:`PrewarmPool` for the duration of the block (its tasks live in a nursery of this block).

    The first spare is ready when the block starts. Leaving the block closes the spare, shielded and bounded.
    """
    pool = PrewarmPool(engine, max_age=max_age, ice_servers=ice_servers)
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
