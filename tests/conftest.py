"""Shared fixtures: one trio-asyncio peer service and one local realtime server per test, on 127.0.0.1:0."""

import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from sdk_events import sdk_problems
from server_events import sent_events

from rtengine import webrtc
from rtengine.adapters._peer import PeerService, open_peer_service
from rtengine.server import LocalServer, ServerOptions, ServerRecord, open_local_server

#: ``pytester`` runs small user test files through rtengine's pytest plugin (tests/testing/), and the README's
#: examples run on the plugin's fixtures; both are enabled here, in the top-level conftest (pytest refuses
#: ``pytest_plugins`` in nested ones). The plugin is named only while rtengine is not installed with its
#: ``pytest11`` entry point (pytest has then loaded it already).
pytest_plugins = ("pytester",) + (
    () if any(ep.name == "rtengine" for ep in entry_points(group="pytest11")) else ("_rtengine_pytest",)
)

#: Put first on the PYTHONPATH of the suite's subprocesses: records the events their local servers send.
SUBPROCESS_HOOK = Path(__file__).parent / "subprocess_hook"


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


@pytest.fixture
async def engine() -> AsyncIterator[webrtc.MediaEngine]:
    """An aiortc media engine on loopback, for tests that carry real media."""
    async with webrtc.open_media_engine(loopback=True) as media_engine:
        yield media_engine


@pytest.fixture
async def media_server(engine: webrtc.MediaEngine, request: pytest.FixtureRequest) -> AsyncIterator[LocalServer]:
    """The local server, its calls' media on ``engine``, with the test module's ``MEDIA_SERVER`` options."""
    options = request.module.MEDIA_SERVER
    assert isinstance(options, ServerOptions)
    async with open_local_server(options, peers=engine) as server:
        yield server


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
def _every_server_event_is_sdk_valid(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every event every local server of the test sent — on each websocket and on each call's data channel, in
    this process or in a subprocess (``rtengine serve``/``demo``/``web``, see ``subprocess_hook/``) — is a valid
    GA server event for the ``openai`` package (model by ``type``, no undeclared field at any depth).

    Exempt, explicitly: the frames fault injection makes invalid on purpose (``server_events.sent_events``)."""
    records: list[ServerRecord] = []
    original_init = ServerRecord.__init__

    def recording_init(self: ServerRecord, limit: int | None = None) -> None:
        original_init(self, limit)
        records.append(self)

    monkeypatch.setattr(ServerRecord, "__init__", recording_init)
    events_dir = tmp_path_factory.mktemp("server-events")
    monkeypatch.setenv("RTENGINE_TEST_EVENTS_DIR", str(events_dir))
    paths = [str(SUBPROCESS_HOOK), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    yield
    sent = [item for record in records for item in sent_events(record)]
    for dump in sorted(events_dir.glob("*.jsonl")):
        for line in dump.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            sent.append((f"subprocess {dump.stem}: {entry['where']}", entry["event"]))
    problems = [f"{where}: {problem}" for where, event in sent for problem in sdk_problems(event)]
    assert problems == [], "server events invalid for the openai SDK:\n" + "\n".join(problems[:40])
