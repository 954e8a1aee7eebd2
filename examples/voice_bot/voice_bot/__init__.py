"""A small voice bot: one realtime conversation per question, with tools.

:func:`ask` opens a conversation (a plain websocket; rtengine does the session, the ordering and the teardown),
sends the question, answers each tool call with the matching function of ``tools`` (its JSON arguments as keyword
arguments, its return value as the output, JSON-encoded) and returns the transcript of the model's answer. A
failure of the conversation — a fatal server error, a lost connection, an end before the answer — raises
:class:`BotError`; a tool the bot does not have is answered with an error output, so the model can recover.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

import rtengine
from rtengine.events import Closed, Error, OutputTranscriptDone, ToolCall

__all__ = ["Answer", "BotError", "Tool", "ask", "main"]

Tool = Callable[..., Any]


class BotError(Exception):
    """The conversation failed before the answer arrived."""


@dataclass
class Answer:
    """The model's answer, and the tools it called on the way (name, arguments), in order."""

    transcript: str
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _run_tool(tools: Mapping[str, Tool], name: str | None, arguments: str) -> tuple[dict[str, Any], str]:
    try:
        kwargs = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {}, json.dumps({"error": "arguments are not JSON"})
    if not isinstance(kwargs, dict):
        return {}, json.dumps({"error": "arguments are not a JSON object"})
    if name is None or name not in tools:
        return kwargs, json.dumps({"error": f"no tool named {name}"})
    return kwargs, json.dumps(tools[name](**kwargs))


async def ask(
    client: rtengine.RealtimeClient,
    question: str,
    tools: Mapping[str, Tool] | None = None,
    *,
    instructions: str = "You are a helpful voice assistant. Be brief.",
) -> Answer:
    """Ask ``question`` in a new conversation and return the model's answer.

    Cancellation: the conversation is closed (bounded) and the cancellation propagates; nothing is left running.
    """
    tools = tools or {}
    session = rtengine.SessionConfig(instructions=instructions)
    calls: list[tuple[str, dict[str, Any]]] = []
    async with rtengine.open_conversation(client, session) as conv:
        await conv.send_text(question)
        await conv.request_response()
        async for event in conv.events:
            match event:
                case ToolCall(call_id=call_id, name=name, arguments=arguments):
                    kwargs, output = _run_tool(tools, name, arguments)
                    calls.append((name or "", kwargs))
                    await conv.send_tool_output(call_id, output)  # respond=True: the model answers next
                case OutputTranscriptDone(transcript=transcript):
                    await conv.close()
                    return Answer(transcript, calls)
                case Error(message=message, code=code, fatal=True):
                    raise BotError(f"the conversation failed: {message} ({code})")
                case Closed(reason=reason):
                    raise BotError(f"the conversation ended before the answer ({reason})")
    raise BotError("the conversation ended before the answer")


def weather(city: str) -> dict[str, Any]:
    """The bot's one built-in tool (a stand-in for a real weather service)."""
    return {"city": city, "forecast": "sunny", "celsius": 21}


TOOLS: dict[str, Tool] = {"weather": weather}


async def run(argv: Sequence[str]) -> int:
    """``voice-bot QUESTION``: ask against ``$OPENAI_BASE_URL`` with ``$OPENAI_API_KEY``; print the answer."""
    if len(argv) != 1:
        print("usage: voice-bot QUESTION", file=sys.stderr)
        return 2
    async with rtengine.RealtimeClient() as client:
        try:
            answer = await ask(client, argv[0], TOOLS)
        except (BotError, rtengine.RealtimeError) as exc:
            print(f"voice-bot: {exc}", file=sys.stderr)
            return 1
    print(answer.transcript)
    return 0


def main() -> None:
    sys.exit(trio.run(run, sys.argv[1:]))
