"""A raw HTTP/1.1 endpoint for the HTTP seam's tests: keeps each request's bytes as read, answers as scripted."""

from __future__ import annotations

import trio

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"


class Seen:
    """Each request's raw bytes (head and body) as the server read them; the answer to the n-th request (from 0) is
    ``answers[n]`` if there is one, else 200; ``None``: no answer ever. Serve it with ``loopback.serving_raw``."""

    def __init__(self, *answers: bytes | None) -> None:
        self.requests: list[bytes] = []
        self.answers = answers

    async def serve(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some()
                if not chunk:
                    return
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = sum(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            while len(buffer) < length:
                buffer += await stream.receive_some()
            self.requests.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
            index = len(self.requests) - 1
            answer = self.answers[index] if index < len(self.answers) else OK
            if answer is None:
                await trio.sleep_forever()
            await stream.send_all(answer)

    def headers(self, index: int) -> dict[str, str]:
        """The n-th request's headers, names lower-cased."""
        lines = self.header_lines(index)
        return {
            name.decode().lower(): value.decode().strip() for name, _, value in (line.partition(b":") for line in lines)
        }

    def header_lines(self, index: int) -> list[bytes]:
        return self.requests[index].split(b"\r\n\r\n")[0].split(b"\r\n")[1:]

    def body(self, index: int) -> bytes:
        return self.requests[index].split(b"\r\n\r\n", 1)[1]
