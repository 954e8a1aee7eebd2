"""Shared fixtures: one trio-asyncio peer service and one local realtime server per test, on 127.0.0.1:0."""

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.server import LocalServer, ServerOptions, open_local_server


@pytest.fixture
async def peers() -> AsyncIterator[PeerService]:
    async with open_peer_service() as service:
        yield service


@pytest.fixture
async def server(peers: PeerService) -> AsyncIterator[LocalServer]:
    async with open_local_server(ServerOptions(delta_interval=0.0), peers=peers) as local:
        yield local


@pytest.fixture
async def offer_sdp(peers: PeerService) -> AsyncIterator[str]:
    peer = await peers.create_offer()
    try:
        yield peer.local_sdp
    finally:
        await peer.aclose()


@pytest.fixture(autouse=True)
def _server_never_logs_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The local server and the aiortc bridge log an ERROR only for a bug (the server's own, or an unexpected
    error of an aiortc task); any such record fails the test."""
    caplog.set_level(logging.INFO, logger="rtengine")
    yield
    watched = ("rtengine.server", "rtengine.peer")
    errors = [r for r in caplog.records if r.name.startswith(watched) and r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
