"""A server-side websocket for raw loopback servers (wsproto over the accepted trio stream), an in-memory wsproto
pair, and an instrument that counts one task's steps: the helpers of the websocket adapter's tests and the wake-up
tests (``tests/adapters/test_ws*.py``, ``tests/engine/test_wakeups.py``)."""

from __future__ import annotations

import trio
import wsproto
import wsproto.events as wse


class WsPeer:
    """The server's end of one websocket: ``accept`` the upgrade, ``send`` events; records the client's ``texts``,
    ``pongs`` and ``close_codes``. A client's CLOSE is answered at once unless ``answer_close`` is False (then
    :meth:`until_close` decides). ``done`` is for the test to set when it is finished with the peer."""

    def __init__(self, stream: trio.SocketStream, *, answer_close: bool = True) -> None:
        self.stream = stream
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self.answer_close = answer_close
        self.texts: list[str] = []
        self.pongs: list[bytes] = []
        self.close_codes: list[int] = []
        self.target = ""
        self.done = trio.Event()

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
        """The client's next event (``None`` at EOF); records texts, pongs and close codes."""
        while True:
            for event in self.ws.events():
                if isinstance(event, wse.TextMessage):
                    self.texts.append(event.data)
                elif isinstance(event, wse.Pong):
                    self.pongs.append(bytes(event.payload))
                elif isinstance(event, wse.CloseConnection):
                    self.close_codes.append(int(event.code))
                    if self.answer_close:
                        await self.send(event.response())
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.ws.receive_data(data)

    async def until_close(self, *, answer: bool = True) -> None:
        """Read until the client's CLOSE or EOF; the CLOSE is answered (at the latest here) unless ``answer`` is
        False and the peer does not ``answer_close``."""
        while (event := await self.next_event()) is not None:
            if isinstance(event, wse.CloseConnection):
                if answer and not self.answer_close:
                    await self.send(event.response())
                return


def open_wsproto_pair() -> tuple[wsproto.WSConnection, wsproto.WSConnection]:
    """A client and a server wsproto connection in memory, the upgrade done (no socket)."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(wse.Request(host="127.0.0.1", target="/")))
    assert isinstance(next(server.events()), wse.Request)
    client.receive_data(server.send(wse.AcceptConnection()))
    assert isinstance(next(client.events()), wse.AcceptConnection)
    return client, server


class TaskSteps(trio.abc.Instrument):
    """Counts the steps of the given tasks (each step after a task's first is a return from a schedule point)."""

    def __init__(self, *tasks: trio.lowlevel.Task) -> None:
        self.tasks = set(tasks)
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task in self.tasks:
            self.steps += 1
