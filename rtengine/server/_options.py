"""Options, latency and fault knobs of the local realtime server.

Every knob is settable from Python (``ServerOptions(faults=Faults(...))`` or ``server.set_faults(...)``) and
from the CLI (``rtengine serve --help``); the two share these dataclasses.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Final, Literal

from ._shapes import CLIENT_EVENT_TYPES
from ._sip_options import SipScript

__all__ = ["INJECTIONS", "Faults", "ServerOptions", "ToolScript", "check_injection", "session_cap_message"]

#: What ``Faults.inject`` may name (``error:<code>`` sends a server ``error`` event with that code).
INJECTIONS: Final = ("malformed_json", "binary", "oversized", "unknown_event", "error:<code>")


def check_injection(name: str) -> str:
    """Validate one ``Faults.inject`` entry and return it."""
    if name in INJECTIONS[:4] or (name.startswith("error:") and len(name) > len("error:")):
        return name
    raise ValueError(f"unknown injection {name!r}; use one of {', '.join(INJECTIONS)}")


@dataclass(frozen=True, slots=True)
class Faults:
    """Latency and fault injection. The defaults inject nothing.

    * ``call_delay`` — seconds to wait before answering ``POST /realtime/calls``.
    * ``call_status`` — answer every call creation with this HTTP status and a JSON error body instead.
    * ``sideband_accept_delay`` / ``websocket_accept_delay`` — seconds the websocket handshake of a sideband
      (``?call_id=``) / direct (``?model=``) connection waits before the server accepts; a client that gives up
      meanwhile is recorded as ``handshake_abandoned``.
    * ``refuse_sideband_joins`` — reject the first N sideband handshakes with 503.
    * ``websocket_status`` — reject every websocket handshake with this status.
    * ``close_after_events`` — after N server events on a connection, end it: ``close_mode="clean"`` sends
      CLOSE 1000, ``"abrupt"`` drops the TCP connection (RST) without a close frame.
    * ``ignore_client_close`` — never answer a client's CLOSE frame (a dead peer; the TCP stays open).
    * ``inject`` — frames sent right after the first ``session.updated``: ``malformed_json``, ``binary``,
      ``oversized`` (``oversized_bytes`` of text), ``unknown_event``, ``error:<code>`` (a server ``error`` event).
    * ``retry_after`` — a ``Retry-After`` header (seconds) on injected rejections.
    * ``media_unreachable`` — answer calls, then drop the answering peer at once: the caller's ICE never completes
      (the call itself lives on until ``ServerOptions.call_connect_seconds``, like a call nobody connects).
    * ``drop_sideband`` — lose a call's sideband abnormally while the call lives on (a network blip, a proxy
      restart): ``"reset"`` drops the TCP connection (RST), ``"eof"`` closes it without a close frame (what a client
      calls 1006), ``"1011"`` sends CLOSE 1011 (server error). It happens once ``drop_sideband_after`` server events
      were sent on that sideband, to the first ``drop_sideband_times`` sidebands of each call (the rest are left
      alone). The call, its conversation and its media are untouched: a sideband may join it again.
      With ``drop_sideband_on`` (a GA client event type, e.g. ``"response.create"``; another name is a
      ``ValueError``), the drop comes instead when the sideband's next client frame of that type arrives, before the
      server reads it: that frame is lost with the connection (neither handled nor recorded), as a frame still in
      flight when a network drops — the frames before it were handled. After a ``"1011"`` the server reads only the
      client's CLOSE reply (recorded as ``close_answered``), as after a drop that follows server events.
    """

    call_delay: float = 0.0
    call_status: int | None = None
    sideband_accept_delay: float = 0.0
    websocket_accept_delay: float = 0.0
    refuse_sideband_joins: int = 0
    websocket_status: int | None = None
    close_after_events: int | None = None
    close_mode: Literal["clean", "abrupt"] = "clean"
    ignore_client_close: bool = False
    inject: tuple[str, ...] = ()
    oversized_bytes: int = 2 * 1024 * 1024
    retry_after: float | None = None
    media_unreachable: bool = False
    drop_sideband: Literal["reset", "eof", "1011"] | None = None
    drop_sideband_after: int = 1
    drop_sideband_times: int = 1
    drop_sideband_on: str | None = None

    def __post_init__(self) -> None:
        for name in ("call_delay", "sideband_accept_delay", "websocket_accept_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("call_status", "websocket_status"):
            status = getattr(self, name)
            if status is not None and not 400 <= status <= 599:
                raise ValueError(f"{name} must be an HTTP error status (400-599), got {status}")
        if self.refuse_sideband_joins < 0:
            raise ValueError("refuse_sideband_joins must be >= 0")
        if self.close_after_events is not None and self.close_after_events < 1:
            raise ValueError("close_after_events must be >= 1")
        if self.close_mode not in ("clean", "abrupt"):
            raise ValueError("close_mode must be 'clean' or 'abrupt'")
        if self.drop_sideband not in (None, "reset", "eof", "1011"):
            raise ValueError("drop_sideband must be 'reset', 'eof' or '1011'")
        if self.drop_sideband_after < 1 or self.drop_sideband_times < 0:
            raise ValueError("drop_sideband_after must be >= 1 and drop_sideband_times >= 0")
        if self.drop_sideband_on is not None and (self.drop_sideband is None or not self.drop_sideband_on):
            raise ValueError("drop_sideband_on needs drop_sideband and names a client event type")
        if self.drop_sideband_on is not None and self.drop_sideband_on not in CLIENT_EVENT_TYPES:
            raise ValueError(f"drop_sideband_on must be a client event type: {', '.join(CLIENT_EVENT_TYPES)}")
        for name in self.inject:
            check_injection(name)


@dataclass(frozen=True, slots=True)
class ToolScript:
    """Make the server's first response a ``function_call`` of ``name`` with ``arguments`` (a JSON string).

    The server then waits for the matching ``function_call_output``; the next response quotes it.
    """

    name: str = "lookup"
    arguments: str = '{"query":"weather"}'


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """How the local server listens and behaves.

    ``api_key`` — when set, every request needs ``Authorization: Bearer <api_key>`` (401 otherwise).
    ``delta_interval`` — seconds between streamed response deltas (0 streams as fast as possible).
    ``reply_text`` — the assistant's reply; by default it echoes the last user text ("You said: …").
    ``audio_ms`` — length of the 440 Hz PCM16 tone a response plays: as output audio deltas on direct
    websockets, over RTP on calls.
    ``greeting_ms`` — a 660 Hz tone played over RTP when a call's peer connection is up (0: none).
    ``echo`` — calls also play back, over RTP, the audio they receive.
    ``loopback`` — when the server opens its own peer service: pin ICE host candidates to 127.0.0.1.
    ``tls`` — a server-side ``ssl.SSLContext`` (certificate loaded): the server speaks HTTPS and WSS, like the API,
    and ``base_url`` starts with ``https://``.
    ``max_body_bytes`` — largest HTTP request body (413 beyond); ``max_message_bytes`` — largest websocket message
    (closed with 1009 as soon as a frame header declares more).
    ``header_timeout`` / ``body_timeout`` — seconds a client has to send a whole request head (also the idle time
    allowed between keep-alive requests) / a whole body; a slower one gets 408 and the connection is closed.
    ``max_connections`` — open TCP connections served at once; one more is answered 503 (``Retry-After: 1``) and
    closed. ``max_calls`` — open WebRTC calls (each holds an answering peer); creating one more is answered 503
    (``Retry-After: 1``, code ``server_busy``) until a call ends.
    ``session_max_seconds`` — the session cap (the API's is 60 minutes): that long after a direct websocket's
    handshake or a call's creation, the server closes every socket of the session with ``1001`` "Your session hit
    the maximum duration of 60 minutes." (the minutes follow the knob) and ends the call.
    ``call_connect_seconds`` — a call whose media peer has not connected this long after its creation ends (a caller
    that never completes ICE cannot leave calls behind); once connected, a call ends when its peer goes away.
    ``sip_webhook`` / ``webhook_secret`` — the simulated phone (:mod:`~rtengine.server._sip`): incoming SIP calls are
    announced to this URL with ``realtime.call.incoming`` webhooks signed with this ``whsec_…`` secret, and play
    the caller of ``sip`` (a :class:`~rtengine.server.SipScript`) once accepted; ``sip.calls`` are placed at start.
    With ``webhook_secret`` alone, calls are placed by ``server.sip.place_call(url)``.
    ``unused_call_seconds`` — a call nobody uses ends this long after its creation (recorded ``unused``), as the API
    expires unused calls: no sideband joined it and its data channel carried no client event. ``None``: never.
    ``slow_client_seconds`` — a websocket client that has not taken the server's next frame (an event or a CLOSE)
    this long is dropped — a TCP reset, recorded ``too_slow`` — and the conversation goes on: one view that stopped
    reading never stalls the others (the call's data channel, its other sidebands). Every write counts (its pongs and
    CLOSE frames too). Its kernel buffers must be full first, so only a client that stopped reading, or takes less
    than one frame in that time, meets it;
    ``math.inf`` never resets one.
    ``record_limit`` — the server's ``record`` keeps this many of the most recent calls, connections and hang-ups
    (a ring: a long-running server holds a bounded history); ``None`` records everything (tests that read a long
    history opt in).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    delta_interval: float = 0.005
    reply_text: str | None = None
    audio_ms: int = 200
    greeting_ms: int = 300
    echo: bool = False
    loopback: bool = False
    tool_call: ToolScript | None = None
    max_body_bytes: int = 1024 * 1024
    max_message_bytes: int = 16 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    max_calls: int = 200
    faults: Faults = field(default_factory=Faults)
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    session_max_seconds: float = 3600.0
    call_connect_seconds: float = 30.0
    sip_webhook: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    sip: SipScript = field(default_factory=SipScript)
    unused_call_seconds: float | None = 120.0
    slow_client_seconds: float = 10.0
    record_limit: int | None = 100

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within 0..65535")
        if self.delta_interval < 0 or self.audio_ms < 0:
            raise ValueError("delta_interval and audio_ms must be >= 0")
        if not (self.header_timeout > 0 and self.body_timeout > 0):
            raise ValueError("header_timeout and body_timeout must be > 0")
        if min(self.max_connections, self.max_calls, self.max_body_bytes, self.max_message_bytes) < 1:
            raise ValueError("max_connections, max_calls, max_body_bytes and max_message_bytes must be >= 1")
        if not self.session_max_seconds > 0 or not self.call_connect_seconds > 0:  # NaN fails too
            raise ValueError("session_max_seconds and call_connect_seconds must be > 0")
        if self.sip_webhook is not None and not self.webhook_secret:
            raise ValueError("sip_webhook needs webhook_secret (the whsec_... secret the webhooks are signed with)")
        if self.sip_webhook is not None and not self.sip_webhook.startswith(("http://", "https://")):
            raise ValueError("sip_webhook must be an http:// or https:// URL")
        if self.unused_call_seconds is not None and not self.unused_call_seconds > 0:
            raise ValueError("unused_call_seconds must be > 0 (or None: never)")
        if not self.slow_client_seconds > 0:  # NaN fails too
            raise ValueError("slow_client_seconds must be > 0")
        if self.record_limit is not None and self.record_limit < 1:
            raise ValueError("record_limit must be >= 1 (or None: record everything)")

    @property
    def session_cap_message(self) -> str:
        """The close reason at the session cap, worded like the API's ("… of 60 minutes.")."""
        return session_cap_message(self.session_max_seconds)


def session_cap_message(seconds: float) -> str:
    """The API's close reason at a cap of ``seconds``: "Your session hit the maximum duration of N minutes."."""
    minutes = f"{seconds / 60:.2f}".rstrip("0").rstrip(".")  # 60, 1.5, 0.03: no exponent, no trailing zeros
    unit = "minute" if minutes == "1" else "minutes"
    return f"Your session hit the maximum duration of {minutes} {unit}."
