"""Small helpers for tests that talk to the local server over loopback."""

import json
from typing import Any

import httpx

from rtengine import SessionConfig
from rtengine.protocol import multipart_body, sideband_url
from rtengine.server import LocalServer


async def create_call(server: LocalServer, offer_sdp: str, session: SessionConfig | None = None) -> httpx.Response:
    body = multipart_body(offer_sdp, (session or SessionConfig()).call_session_json())
    async with httpx.AsyncClient() as http:
        return await http.post(
            server.base_url + "/realtime/calls", content=body.content, headers={"content-type": body.content_type}
        )


def call_id_of(response: httpx.Response) -> str:
    return str(response.headers["location"].rsplit("/", 1)[1])


def sideband(server: LocalServer, call_id: str) -> str:
    return sideband_url(server.base_url, call_id)


def direct(server: LocalServer, model: str = "gpt-realtime") -> str:
    return server.base_url.replace("http://", "ws://") + f"/realtime?model={model}"


def loads(frame: str | bytes | None) -> dict[str, Any]:
    assert isinstance(frame, str), frame
    value = json.loads(frame)
    assert isinstance(value, dict)
    return value
