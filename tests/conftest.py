"""Shared fixtures: one trio-asyncio peer service and one local realtime server per test, on 127.0.0.1:0."""

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from sdk_events import sdk_problems

from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.server import LocalServer, ServerOptions, ServerRecord, open_local_server

#: What the records keep for the raw frames fault injection sends (not JSON events, by design).
RAW_INJECTIONS = ("<malformed>", "<binary>")


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


@pytest.fixture(autouse=True)
def _every_server_event_is_sdk_valid(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every event every local server of the test sent — on each websocket and on each call's data channel — is
    a valid GA server event for the ``openai`` package (model by ``type``, no undeclared field at any depth).

    Exempt, explicitly: the frames fault injection makes invalid on purpose (their ``event_id`` is in
    ``ServerRecord.injected_event_ids``; raw injected frames are recorded as ``<malformed>``/``<binary>``)."""
    records: list[ServerRecord] = []
    original_init = ServerRecord.__init__

    def recording_init(self: ServerRecord) -> None:
        original_init(self)
        records.append(self)

    monkeypatch.setattr(ServerRecord, "__init__", recording_init)
    yield
    problems: list[str] = []
    for record in records:
        streams = [(f"websocket {c.path} #{n}", c.frames_out) for n, c in enumerate(record.connections)]
        streams += [(f"data channel of {c.call_id}", c.data_frames_out) for c in record.calls]
        for where, frames in streams:
            for frame in frames:
                if frame in RAW_INJECTIONS:
                    continue
                if isinstance(frame, dict) and frame.get("event_id") in record.injected_event_ids:
                    continue
                problems += [f"{where}: {problem}" for problem in sdk_problems(frame)]
    assert problems == [], "server events invalid for the openai SDK:\n" + "\n".join(problems[:40])
