"""A server-side websocket for raw loopback servers (wsproto over the accepted trio stream), and an instrument that
counts one task's steps: the helpers of the wake-up tests (``tests/adapters/test_ws_wakeups.py``,
``tests/engine/test_wakeups.py``)."""

from __future__ import annotations

import trio
import wsproto
import wsproto.events as wse


class WsPeer:
    """The server's end of one websocket: ``accept`` the upgrade, ``send`` events, read the client's ``texts``."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.texts: list[str] = []
        self.target = ""

    async def accept(self) -> None:
        while True:
            for event in self.ws.events():
                if isinstance(event, wse.Request):
                    self.target = event.target
                    await self.send(wse.AcceptConnection())
                    return
            self.ws.receive_data(await self.stream.receive_some(65536))

    async def send(self, event: wse.Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def next_event(self) -> wse.Event | None:
        """The client's next event (texts are kept in ``texts``); None at EOF. A CLOSE is answered."""
        while True:
            for event in self.ws.events():
                if isinstance(event, wse.TextMessage):
                    self.texts.append(event.data)
                elif isinstance(event, wse.CloseConnection):
                    await self.send(event.response())
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.ws.receive_data(data)

    async def until_close(self) -> None:
        """Read until the client's CLOSE (answered) or EOF."""
        while (event := await self.next_event()) is not None:
            if isinstance(event, wse.CloseConnection):
                return


class TaskSteps(trio.abc.Instrument):
    """Counts the steps of the given tasks (each step after a task's first is a return from a schedule point)."""

    def __init__(self, *tasks: trio.lowlevel.Task) -> None:
        self.tasks = set(tasks)
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task in self.tasks:
            self.steps += 1
