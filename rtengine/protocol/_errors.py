"""rtengine's exception hierarchy.

Every exception rtengine raises derives from :class:`RealtimeError`. Errors are split the way h11 and trio
split them: *local* errors mean "you (or your configuration) asked for something impossible"; *remote*
errors mean "the other side (the provider, the network, the local server) failed or refused"::

    RealtimeError
    ├── LocalError
    │   ├── ConfigError ............ invalid SessionConfig, base URL, missing API key
    │   └── ConversationNotRunning . a send after the conversation ended
    └── RemoteError
        ├── CallError .............. call creation (POST /realtime/calls) or hang-up failed
        │   ├── CallRejected ....... non-2xx answer: .status, .body, .retry_after
        │   │   └── CallNotFound ... hang-up of a call the server does not know (404 call_id_not_found)
        │   ├── InvalidLocation .... missing or unusable Location header (no valid call id)
        │   └── InvalidAnswer ...... the 2xx body is not a usable SDP answer
        ├── InvalidCallId .......... a call id that must not enter a URL
        ├── TransportError ......... a socket or HTTP exchange failed
        │   ├── ConnectFailed ...... TCP/TLS/websocket handshake failed (.status when rejected)
        │   └── ConnectionLost ..... an open socket ended unexpectedly (.code, .reason)
        ├── InvalidSdp ............. an SDP offer or answer that a WebRTC peer cannot use
        └── ServerError ............ a server ``error`` event (.code, .type, .param, .event_id, .error_class)

This module is re-exported from :mod:`rtengine`; import the names from there.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "CallError",
    "CallNotFound",
    "CallRejected",
    "ConfigError",
    "ConnectFailed",
    "ConnectionLost",
    "ConversationNotRunning",
    "ErrorClass",
    "InvalidAnswer",
    "InvalidCallId",
    "InvalidLocation",
    "InvalidSdp",
    "LocalError",
    "RealtimeError",
    "RemoteError",
    "ServerError",
    "TransportError",
]


class ErrorClass(Enum):
    """How a server ``error`` event affects a conversation: wait and retry, ignore, or end it."""

    #: "Conversation already has an active response": the ``response.create`` is deferred, nothing ends.
    DEFERRAL = "deferral"
    #: Harmless (e.g. ``response_cancel_not_active``): reported as a non-fatal error, the conversation goes on.
    BENIGN = "benign"
    #: Anything else: the conversation ends with an error. Never retried automatically.
    FATAL = "fatal"


class RealtimeError(Exception):
    """Root of every exception rtengine raises."""


class LocalError(RealtimeError):
    """The caller asked for something that cannot be done; retrying the same request cannot help."""


class ConfigError(LocalError, ValueError):
    """Invalid configuration: a bad :class:`~rtengine.SessionConfig`, base URL, or a missing API key."""


class ConversationNotRunning(LocalError):
    """Raised by every send once the conversation has ended (closed, failed or replaced)."""

    def __init__(self, message: str = "conversation is not running") -> None:
        super().__init__(message)


class RemoteError(RealtimeError):
    """The provider, the network or the peer failed or refused."""


class CallError(RemoteError):
    """Creating a WebRTC call (``POST /realtime/calls``) or hanging it up failed."""


class CallRejected(CallError):
    """A call-creation (or hang-up) request got a non-2xx answer.

    ``status`` is the HTTP status, ``body`` the response text (possibly truncated), and ``retry_after`` the
    ``Retry-After`` header in seconds when the server sent one.
    """

    def __init__(self, message: str, *, status: int, body: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retry_after = retry_after


class CallNotFound(CallRejected):
    """A hang-up (``POST /realtime/calls/{id}/hangup``) answered 404 with ``error.code == "call_id_not_found"``:
    the server does not know the call (it never existed, or it has already ended)."""


class InvalidLocation(CallError):
    """The call-creation answer has no ``Location`` header, or one without a usable call id."""


class InvalidAnswer(CallError):
    """The call-creation answer's body is not a usable SDP answer (not UTF-8, or not SDP)."""


class InvalidCallId(RemoteError, ValueError):
    """A call id that does not match ``rtc_[A-Za-z0-9_-]+`` (bounded length); it never enters a URL."""


class TransportError(RemoteError):
    """A socket or HTTP exchange failed."""


class ConnectFailed(TransportError):
    """Connecting failed: TCP, TLS, a timeout, or a rejected websocket handshake.

    ``status`` is the HTTP status of a rejected handshake (``None`` for network failures) and ``body`` its
    response text. ``retryable`` is False for failures that another attempt cannot fix (a host name that does not
    resolve, a TLS version or certificate the two sides cannot agree on, an invalid address): they are not retried.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "", retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.retryable = retryable


class ConnectionLost(TransportError):
    """An open socket ended without a clean close, or a read/write failed. ``code``/``reason`` as received.

    ``partial`` is True when a write failed after it may have begun: part of the frame may be on the wire (False:
    nothing of it was written)."""

    def __init__(
        self, message: str, *, code: int | None = None, reason: str | None = None, partial: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.partial = partial


class InvalidSdp(RemoteError, ValueError):
    """An SDP offer or answer a WebRTC peer cannot use."""


class ServerError(RemoteError):
    """A server ``error`` event, raised where an error event has to become an exception.

    Carries the event's ``code``, ``type``, ``param`` and ``event_id`` and its ``error_class`` (:class:`ErrorClass`).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
        error_class: ErrorClass = ErrorClass.FATAL,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.type = type
        self.param = param
        self.event_id = event_id
        self.error_class = error_class
