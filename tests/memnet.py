"""An in-memory network to the local server, for tests on a virtual clock (MockClock with autojump).

Real sockets wait on the OS, which an autojump clock counts as "blocked" and jumps over, so tests on virtual
time connect to the *real* local server through trio memory streams instead: the server's own connection
handler (h11, wsproto, the realtime session) on one end, the engine's real websocket adapter on the other, and
call creation through ``LocalServer.respond`` behind an ``httpx.MockTransport``.
"""

import httpx
import trio
import trio.testing

from rtengine.server import LocalServer


class MemoryNetwork:
    def __init__(self, server: LocalServer, nursery: trio.Nursery) -> None:
        self._server = server
        self._nursery = nursery
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._respond))

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        client_end, server_end = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self._server.handle, server_end)
        return client_end

    async def _respond(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        status, headers, body = await self._server.respond(
            request.method, target, dict(request.headers), request.content
        )
        return httpx.Response(status, headers=headers, content=body)
