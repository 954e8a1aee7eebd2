"""Builders for the GA server events of :mod:`._more_events` (MCP, ``conversation.created``, DTMF), merged into
the parser's dispatch table. Same rules as :mod:`._parse`: a missing required field raises ``Missing``; a wrongly
typed optional one reads as absent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ._events import ServerEvent
from ._fields import int_field, obj_field, req_str, str_field
from ._more_events import (
    ConversationCreated,
    DtmfReceived,
    McpArgumentsDelta,
    McpArgumentsDone,
    McpCall,
    McpListTools,
    McpStatus,
)

__all__ = ["MORE_BUILDERS"]


def _conversation_created(e: Mapping[str, Any]) -> ConversationCreated:
    conversation = obj_field(e, "conversation") or {}
    return ConversationCreated(str_field(conversation, "id"), str_field(e, "event_id"))


def _dtmf(e: Mapping[str, Any]) -> DtmfReceived:
    return DtmfReceived(req_str(e, "event"), int_field(e, "received_at"), str_field(e, "event_id"))


def _list_tools(status: McpStatus) -> Callable[[Mapping[str, Any]], McpListTools]:
    def build(e: Mapping[str, Any]) -> McpListTools:
        return McpListTools(str_field(e, "item_id"), status, str_field(e, "event_id"))

    return build


def _call(status: McpStatus) -> Callable[[Mapping[str, Any]], McpCall]:
    def build(e: Mapping[str, Any]) -> McpCall:
        return McpCall(str_field(e, "item_id"), status, int_field(e, "output_index"), str_field(e, "event_id"))

    return build


def _arguments_delta(e: Mapping[str, Any]) -> McpArgumentsDelta:
    return McpArgumentsDelta(
        req_str(e, "delta"),
        str_field(e, "item_id"),
        str_field(e, "response_id"),
        int_field(e, "output_index"),
        str_field(e, "event_id"),
    )


def _arguments_done(e: Mapping[str, Any]) -> McpArgumentsDone:
    return McpArgumentsDone(
        req_str(e, "arguments"),
        str_field(e, "item_id"),
        str_field(e, "response_id"),
        int_field(e, "output_index"),
        str_field(e, "event_id"),
    )


MORE_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], ServerEvent]]] = {
    "conversation.created": _conversation_created,
    "input_audio_buffer.dtmf_event_received": _dtmf,
    "mcp_list_tools.in_progress": _list_tools("in_progress"),
    "mcp_list_tools.completed": _list_tools("completed"),
    "mcp_list_tools.failed": _list_tools("failed"),
    "response.mcp_call.in_progress": _call("in_progress"),
    "response.mcp_call.completed": _call("completed"),
    "response.mcp_call.failed": _call("failed"),
    "response.mcp_call_arguments.delta": _arguments_delta,
    "response.mcp_call_arguments.done": _arguments_done,
}
