"""A direct websocket conversation for tests that need "everything the server answered to this one event".

:class:`MarkedClient` checks every event it reads against the ``openai`` package's types (``problems``) and
:meth:`MarkedClient.answers` sends an event followed by a marker (a retrieve of an unknown item, answered by an
``error`` carrying the marker's ``event_id``), returning exactly what came before the marker.
"""

from typing import Any

from helpers import loads
from sdk_events import sdk_problems

from rtengine.adapters._ws import RealtimeSocket
from rtengine.protocol import SocketEnd
from rtengine.protocol._payloads import encode


class MarkedClient:
    """A direct websocket conversation; every event read is kept and checked against the SDK's types."""

    def __init__(self, sock: RealtimeSocket) -> None:
        self.sock = sock
        self.events: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self._marks = 0

    async def send(self, event: dict[str, Any]) -> None:
        await self.sock.send(encode(event))

    async def read(self) -> dict[str, Any]:
        frame = await self.sock.receive()
        assert not isinstance(frame, SocketEnd), f"the server ended the socket: {frame}"
        event = loads(frame)
        self.problems += sdk_problems(event)
        self.events.append(event)
        return event

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            seen.append(await self.read())
            if seen[-1]["type"] == event_type:
                return seen

    async def answers(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Send ``event`` and return what the server answered to it before the marker sent right after it."""
        self._marks += 1
        mark = f"marked_client_{self._marks}"
        await self.send(event)
        await self.send({"type": "conversation.item.retrieve", "item_id": "item_marker_none", "event_id": mark})
        seen: list[dict[str, Any]] = []
        while True:
            got = await self.read()
            if got["type"] == "error" and got["error"].get("event_id") == mark:
                return seen
            seen.append(got)


async def started(sock: RealtimeSocket) -> MarkedClient:
    """A client whose ``session.created`` has been read."""
    client = MarkedClient(sock)
    await client.until("session.created")
    return client


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]
