"""Helpers of the sideband re-attach and rotation tests: what the server received across a call's sidebands, and
scheduled inputs fed to a conversation."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import trio

import rtengine
from rtengine.server import ConnectionRecord, LocalServer


def delivered(joins: list[ConnectionRecord]) -> dict[str, list[str]]:
    """What the server received across every sideband of the call, in order, per kind."""
    got: dict[str, list[str]] = {"text": [], "tool": [], "audio": [], "response": []}
    for conn in joins:
        for frame in conn.frames_in:
            kind = frame.get("type")
            if kind == "input_audio_buffer.append":
                got["audio"].append(base64.b64decode(frame["audio"]).hex())
            elif kind == "conversation.item.create":
                item = frame["item"]
                if item["type"] == "function_call_output":
                    got["tool"].append(item["call_id"])
                else:
                    got["text"].append(item["content"][0]["text"])
            elif kind == "response.create":
                got["response"].append(kind)
    return got


async def quiet(server: LocalServer, conv: rtengine.Conversation) -> None:
    """Wait until the server has sent its answers to every item it received (``session.updated``, then an
    ``item.added`` and ``item.done`` per item), so the next server event is the answer to the next input."""
    joins = joins_of(server, conv)
    conn = joins[-1]
    items = conn.types_in().count("conversation.item.create")
    await server.record.wait_until(lambda: len(conn.frames_out) >= 1 + 2 * items)


def joins_of(server: LocalServer, conv: rtengine.Conversation) -> list[ConnectionRecord]:
    assert conv.call_id is not None
    return server.record.joins(conv.call_id)


async def feed(
    inputs: Sequence[tuple[float, str]], queued: dict[str, list[str]], conv: rtengine.Conversation, start: float
) -> None:
    """Send each scheduled input (``(at, kind)``, kind ``text``/``tool``/``audio``) at its virtual time, recording in
    ``queued`` what the conversation took; stops when the conversation no longer runs."""
    for index, (at, kind) in enumerate(inputs):
        await trio.sleep_until(start + at)
        try:
            if kind == "text":
                await conv.send_text(f"text-{index}")
                queued["text"].append(f"text-{index}")
            elif kind == "tool":
                await conv.send_tool_output(f"call_{index}", "ok", respond=False)
                queued["tool"].append(f"call_{index}")
            elif conv.send_audio(index.to_bytes(2, "little")):
                queued["audio"].append(str(index))
        except rtengine.ConversationNotRunning:
            return


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    """``part`` appears in ``whole`` in order (gaps allowed)."""
    remaining = iter(whole)
    return all(any(x == y for y in remaining) for x in part)
