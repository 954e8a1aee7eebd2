"""Helpers of the sideband re-attach and rotation tests: what the server received across a call's sidebands, and
scheduled inputs fed to a conversation."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import trio

import rtengine
from rtengine.server import ConnectionRecord, LocalServer


def delivered(joins: list[ConnectionRecord], frame: int = 2) -> dict[str, list[str]]:
    """What the server received across every sideband of the call, in order, per kind (audio as the ``frame``-byte
    frames sent: frames that waited together arrive in one append)."""
    got: dict[str, list[str]] = {"text": [], "tool": [], "audio": [], "response": []}
    for conn in joins:
        for payload in conn.frames_in:
            kind = payload.get("type")
            if kind == "input_audio_buffer.append":
                got["audio"].extend(split_audio(str(payload["audio"]), frame, "hex"))
            elif kind == "conversation.item.create":
                item = payload["item"]
                if item["type"] == "function_call_output":
                    got["tool"].append(item["call_id"])
                else:
                    got["text"].append(item["content"][0]["text"])
            elif kind == "response.create":
                got["response"].append(kind)
    return got


def texts_created(frames: list[Any]) -> list[str]:
    """The texts of the ``conversation.item.create`` frames a connection received."""
    return [
        part.get("text")
        for frame in frames
        if isinstance(frame, dict) and frame.get("type") == "conversation.item.create"
        for part in frame["item"].get("content", [])
    ]


def split_audio(audio: str, frame: int, how: str = "int") -> list[str]:
    """The ``frame``-byte frames of one ``input_audio_buffer.append``'s base64 audio, each as its hex (``how="hex"``)
    or as the little-endian number it holds."""
    data = base64.b64decode(audio)
    chunks = [data[at : at + frame] for at in range(0, len(data), frame)]
    return [chunk.hex() if how == "hex" else str(int.from_bytes(chunk, "little")) for chunk in chunks]


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
