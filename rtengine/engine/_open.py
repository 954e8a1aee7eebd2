"""The public ways to run a conversation: :func:`open_conversation` (a block) and :func:`start_conversation`
(tasks in the caller's nursery)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING

import trio

from ..protocol._history import DEFAULT_HISTORY_ITEMS
from ..protocol._rotation import DEFAULT_ROTATE_MARGIN
from ..protocol._util import sole_leaf
from ._conversation import Capacities, Conversation
from ._start import _DEFAULT_CAPACITIES, SidebandMode, StartOptions, create_call, launch, start, start_websocket

if TYPE_CHECKING:
    from ..protocol._session import SessionConfig
    from ._media import Media
    from ._seams import Endpoint

__all__ = ["open_conversation", "start_conversation"]


def _options(
    offer_sdp: str | None,
    sideband: SidebandMode,
    raw_sdp: bool,
    capacities: Capacities | None,
    media: Media | None,
    hangup: bool,
    reconnect: bool = False,
    rotate_margin: float | None = DEFAULT_ROTATE_MARGIN,
    history_items: int = DEFAULT_HISTORY_ITEMS,
    accept_call_id: str | None = None,
) -> StartOptions:
    return StartOptions(
        offer_sdp,
        sideband,
        raw_sdp,
        capacities or _DEFAULT_CAPACITIES,
        media,
        hangup,
        reconnect,
        rotate_margin,
        history_items,
        accept_call_id,
    )


async def start_conversation(
    client: Endpoint,
    session: SessionConfig,
    nursery: trio.Nursery,
    offer_sdp: str | None = None,
    *,
    sideband: SidebandMode = "background",
    raw_sdp: bool = False,
    capacities: Capacities | None = None,
    media: Media | None = None,
    hangup: bool = True,
    reconnect: bool = False,
    rotate_margin: float | None = DEFAULT_ROTATE_MARGIN,
    history_items: int = DEFAULT_HISTORY_ITEMS,
    accept_call_id: str | None = None,
) -> Conversation:
    """Start a conversation whose task lives in ``nursery``; return once it runs (see :func:`open_conversation`).

    Cancelling ``nursery`` (or any scope around it) ends the conversation as :meth:`Conversation.close` does:
    ``Closed("requested")``, ``active`` False, sends raise.
    """
    options = _options(
        offer_sdp, sideband, raw_sdp, capacities, media, hangup, reconnect, rotate_margin, history_items, accept_call_id
    )
    return await start(client, session, nursery, options)


class _ConversationBlock:
    """The async context manager :func:`open_conversation` returns (single use).

    A class rather than ``@asynccontextmanager``: entering it is on the time to answer, and the generator machinery
    cost more there than the work it wraps. It enters and leaves the conversation's nursery by hand, exactly as
    ``async with`` would; the block's own exception comes out as raised (never rewrapped or rechained).
    """

    __slots__ = ("_client", "_conv", "_nursery", "_options", "_session")

    def __init__(self, client: Endpoint, session: SessionConfig, options: StartOptions) -> None:
        self._client = client
        self._session = session
        self._options = options
        self._nursery: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._conv: Conversation | None = None

    async def __aenter__(self) -> Conversation:
        if self._nursery is not None or self._conv is not None:
            raise RuntimeError("open_conversation(...) can be entered only once")
        client, options = self._client, self._options
        call = await create_call(client, self._session, options) if options.webrtc else None
        # No checkpoint from here until launch() hands the call to the runner, so a created call cannot leak
        # (entering a nursery does not checkpoint).
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._nursery = manager
        try:
            if call is None:
                conv = await start_websocket(client, self._session, nursery, options)
            else:
                conv = await launch(call, nursery, client, options)
        except BaseException as exc:
            if await _leave(manager, exc):  # pragma: no cover - a nursery never swallows a start's error
                raise RuntimeError("the conversation's start failed") from exc
            raise
        self._conv = conv
        return conv

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        assert self._nursery is not None
        assert self._conv is not None
        await self._conv.close()  # shielded, bounded; never raises
        return await _leave(self._nursery, exc)


async def _leave(manager: AbstractAsyncContextManager[trio.Nursery], exc: BaseException | None) -> bool:
    """Leave a nursery entered by hand. Returns False when ``exc`` (the block's own exception) must propagate
    unchanged; raises what the conversation's task raised (a bug: that exception itself, or the whole group when
    there are several)."""
    try:
        if exc is None:
            await manager.__aexit__(None, None, None)
        else:
            await manager.__aexit__(type(exc), exc, exc.__traceback__)
    except BaseExceptionGroup as group:
        if exc is not None and len(group.exceptions) == 1 and _same(group.exceptions[0], exc):
            return False  # only the block's own exception: Python re-raises it untouched
        leaf = sole_leaf(group)
        if leaf is not None:  # a bug in the conversation's task (the block, if it failed, was cancelled by it)
            raise leaf from leaf.__cause__
        raise
    return False


def _same(seen: BaseException, raised: BaseException) -> bool:
    """``seen`` is ``raised``, or trio's copy of it (a nursery rebuilds a group that passes through it)."""
    if seen is raised:
        return True
    if not (isinstance(seen, BaseExceptionGroup) and isinstance(raised, BaseExceptionGroup)):
        return False
    pairs = zip(seen.exceptions, raised.exceptions, strict=False)
    return (
        type(seen) is type(raised)
        and seen.message == raised.message
        and len(seen.exceptions) == len(raised.exceptions)
        and all(_same(a, b) for a, b in pairs)
    )


def open_conversation(
    client: Endpoint,
    session: SessionConfig,
    offer_sdp: str | None = None,
    *,
    sideband: SidebandMode = "background",
    raw_sdp: bool = False,
    capacities: Capacities | None = None,
    media: Media | None = None,
    hangup: bool = True,
    reconnect: bool = False,
    rotate_margin: float | None = DEFAULT_ROTATE_MARGIN,
    history_items: int = DEFAULT_HISTORY_ITEMS,
    accept_call_id: str | None = None,
) -> _ConversationBlock:
    """Run one realtime conversation for the duration of an ``async with`` block.

    Without ``offer_sdp``: a plain websocket conversation; the socket is connected and ``session.update`` sent
    before the block starts. With ``offer_sdp``: a WebRTC call; the block starts as soon as the call exists
    (``conv.answer_sdp``, ``conv.call_id``) and the sideband joins in the background (``sideband="inline"`` joins
    first: a slower answer, but a failed join raises before the block). ``raw_sdp=True`` posts the offer alone
    (``application/sdp``). With
    ``media=rtengine.webrtc.Media(engine, …)``: rtengine is the media peer — it creates the offer, and after the
    block starts it applies the answer, connects and carries audio both ways (``conv.media``).
    With ``accept_call_id``: an incoming SIP call (the ``call_id`` of a verified ``realtime.call.incoming`` webhook,
    see :mod:`rtengine.webhooks`) is accepted with ``session`` inline, and the block starts as soon as the accept is
    answered (``conv.transport == "sip"``, ``conv.call_id``); the sideband joins in the background; ``conv.refer()``
    transfers the call; DTMF keypresses arrive as ``DtmfReceived`` events.
    A WebRTC or SIP call is hung up when the conversation ends, for any reason, unless ``hangup=False`` (an app that
    hands the call on).
    ``rotate_margin`` (seconds; ``None`` turns it off): that long before the session's cap (its ``expires_at``), a
    call rtengine is the media peer of is re-dialed — a new call with the same session, the history replayed, the
    media moved, the old call hung up: ``SessionRotated``, the same ``conv`` with the new ``conv.call_id``; for a
    browser-held call (``offer_sdp``) the app gets ``Error("session_expiring", fatal=False)`` to re-offer (a SIP
    call: to transfer it with ``conv.refer`` or end it), and the cap ends the conversation with
    ``Closed("session_expired")``.

    Raises, before the block: :class:`~rtengine.ConfigError` (no API key, bad arguments),
    :class:`~rtengine.CallError` subclasses (call creation), :class:`~rtengine.ConnectFailed` (connect, or an
    inline join), :class:`~rtengine.ConnectionLost` (a call-creation request read but never answered). Leaving
    the block — normally, by exception or by cancellation — closes the conversation (``Closed("requested")``
    unless it had ended), bounded by ``close_timeout``: cancellation from outside is handled as ``close()``, with
    the close handshake intact. The block's own exception comes out exactly as raised.
    A bug in rtengine's tasks delivers ``Error("internal_error")`` and ``Closed("error")``, then raises.

    Websocket transport only: ``reconnect=True`` survives an abnormal drop of the socket (a reset, an EOF without
    a close frame, 1001/1006/1011/1012/1013): a new session is opened with the client's re-join budget, the
    history replayed into it (``ConnectionDropped``, then ``SessionRestored``); off by default, as the model then
    sees a rebuilt context. ``rotate_margin`` seconds (default 30; ``None``: never) before the session's cap
    (``expires_at``) the conversation moves to a new session at a quiet moment, history replayed
    (``SessionRotated``). ``history_items`` bounds the history kept for a replay.
    WebRTC: with ``media`` (rtengine is the media peer) the call is re-dialed ``rotate_margin`` before its cap — a
    new call with the current session, the history replayed, the media moved, the old call hung up —
    ``SessionRotated(old_call_id, new_call_id, gap_ms)``, the same ``conv`` with the new ``conv.call_id``; a
    browser-held call (``offer_sdp``) gets ``Error("session_expiring", fatal=False)`` then, so the app can
    re-offer, and its cap ends the conversation with ``Closed("session_expired")``.
    """
    options = _options(
        offer_sdp, sideband, raw_sdp, capacities, media, hangup, reconnect, rotate_margin, history_items, accept_call_id
    )
    return _ConversationBlock(client, session, options)
