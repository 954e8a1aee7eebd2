"""Secrets a server echoes never leave rtengine (issue #15, finding 2).

A hostile or careless provider (or proxy) that reflects the request's ``Authorization`` header: in a call-creation
4xx body, in a rejected websocket handshake's body, in ``error`` events' messages and in a close reason. The key is
also passed in the base URL's query (``?api-key=…``, as some gateways expect). With every logger at DEBUG, the key
appears in no exception (str, repr, attributes), no log record, no event, no ``repr(client)``, no timeline entry.
"""

from __future__ import annotations

import logging

import pytest
import trio
from echo_servers import echo, echo_error_body, echoing_server
from loopback import Reply

import rtengine
from rtengine.adapters import HttpRequest
from rtengine.events import Closed, Error

#: Recognisable keys: an OpenAI-shaped one, and a gateway key with no known shape (only the configured-key path
#: can catch that one).
KEYS = ["sk-proj-ECHOEDsecret0123456789abcdef", "gw7f3a9c1e5b2d8f4a6c0e9b1d3f5a7c9e"]


async def _route(request: HttpRequest) -> Reply:
    """``POST …/realtime/calls``: 400 with the key in the body."""
    return 400, [("content-type", "application/json")], echo_error_body(echo(request), "invalid_value")


def _leaks(key: str, *things: object) -> list[str]:
    return [repr(t)[:300] for t in things if key in repr(t) or key in str(t)]


@pytest.mark.parametrize("key", KEYS)
async def test_a_key_the_server_echoes_appears_nowhere(
    key: str, offer_sdp: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger
    seen: list[object] = []
    async with echoing_server(_route) as port:
        base = f"http://127.0.0.1:{port}"
        settings: dict[str, object] = {"api_key": key, "call_retries": 0, "sideband_retries": 0}
        with trio.fail_after(20):
            async with rtengine.RealtimeClient(f"{base}/v1?api-key={key}", **settings) as client:  # type: ignore[arg-type]
                seen.append(client)
                with pytest.raises(rtengine.CallRejected) as call_refused:
                    async with rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp):
                        pass  # pragma: no cover - the call is refused
                assert call_refused.value.status == 400
                assert "Invalid credentials" in call_refused.value.body  # the rest of the server's text is kept
                seen += [call_refused.value, call_refused.value.body, call_refused.value.args]
            async with rtengine.RealtimeClient(f"{base}/reject/v1?api-key={key}", **settings) as client:  # type: ignore[arg-type]
                seen.append(client)
                with pytest.raises(rtengine.ConnectFailed) as handshake_refused:
                    async with rtengine.open_conversation(client, rtengine.SessionConfig()):
                        pass  # pragma: no cover - the handshake is refused
                assert handshake_refused.value.status == 401
                assert "Invalid credentials" in handshake_refused.value.body
                seen += [handshake_refused.value, handshake_refused.value.body, handshake_refused.value.args]
            async with rtengine.RealtimeClient(f"{base}/v1?api-key={key}", **settings) as client:  # type: ignore[arg-type]
                async with rtengine.open_conversation(client, rtengine.SessionConfig()) as conv:
                    events = [event async for event in conv.events]
                seen += [client, conv, *events, dict(conv.timeline), conv.stats]
    errors = [e for e in events if isinstance(e, Error)]
    assert [(e.code, e.fatal) for e in errors] == [("response_cancel_not_active", False), ("invalid_api_key", True)]
    assert all("Invalid credentials" in e.message for e in errors)
    assert events[-1] == Closed("error")
    records = [(r.name, r.levelname, r.getMessage(), r.exc_text or "") for r in caplog.records]
    assert any("Invalid credentials" in r[2] for r in records)  # the server's text was logged, scrubbed
    assert _leaks(key, *seen) == []
    assert [r for r in records if key in " ".join(r)] == []
