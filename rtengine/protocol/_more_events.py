"""Typed events for the GA server events around the conversation proper: MCP tool listing and MCP calls,
``conversation.created`` and SIP keypad presses (DTMF). Frozen, slotted dataclasses like the others in
:mod:`._events`, which puts them into the ``ServerEvent`` union.

One class per kind, with the lifecycle stage as a ``status`` field where the API has one event per stage
(``mcp_list_tools.in_progress/completed/failed`` → :class:`McpListTools`); match on it
(``case McpCall(status="failed"): …``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "ConversationCreated",
    "DtmfReceived",
    "McpArgumentsDelta",
    "McpArgumentsDone",
    "McpCall",
    "McpListTools",
    "McpStatus",
]

#: The stage of an MCP tool listing or call, from the suffix of its event type.
McpStatus = Literal["in_progress", "completed", "failed"]


@dataclass(frozen=True, slots=True)
class ConversationCreated:
    """``conversation.created``: the default conversation exists (right after ``session.created``)."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "conversation.created"

    conversation_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """``input_audio_buffer.dtmf_event_received`` (SIP calls): the caller pressed ``key`` (``0``-``9``, ``*``,
    ``#``, ``A``-``D``); ``received_at`` is the server's Unix time in seconds."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "input_audio_buffer.dtmf_event_received"

    key: str
    received_at: int | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class McpListTools:
    """``mcp_list_tools.in_progress`` / ``.completed`` / ``.failed``: the server listing an MCP server's tools
    (``item_id`` is the ``mcp_list_tools`` item)."""

    item_id: str | None
    status: McpStatus
    event_id: str | None = None

    @property
    def wire_type(self) -> str:
        """The ``type`` of the server event this is made from: ``mcp_list_tools.<status>``."""
        return f"mcp_list_tools.{self.status}"


@dataclass(frozen=True, slots=True)
class McpCall:
    """``response.mcp_call.in_progress`` / ``.completed`` / ``.failed``: the server calling an MCP tool."""

    item_id: str | None
    status: McpStatus
    output_index: int | None = None
    event_id: str | None = None

    @property
    def wire_type(self) -> str:
        """The ``type`` of the server event this is made from: ``response.mcp_call.<status>``."""
        return f"response.mcp_call.{self.status}"


@dataclass(frozen=True, slots=True)
class McpArgumentsDelta:
    """``response.mcp_call_arguments.delta``: part of an MCP call's JSON arguments."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "response.mcp_call_arguments.delta"

    delta: str
    item_id: str | None = None
    response_id: str | None = None
    output_index: int | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class McpArgumentsDone:
    """``response.mcp_call_arguments.done``: an MCP call's complete JSON arguments (a string)."""

    #: The ``type`` of the server event this is made from.
    wire_type: ClassVar[str] = "response.mcp_call_arguments.done"

    arguments: str
    item_id: str | None = None
    response_id: str | None = None
    output_index: int | None = None
    event_id: str | None = None
