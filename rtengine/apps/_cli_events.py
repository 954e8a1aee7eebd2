"""How the ``rtengine`` command names and describes a conversation's events: one rule for every line.

An event the server sent is named by its wire ``type`` (``response.done``, ``session.updated``), so a line can be
looked up in the Realtime API's reference; an event rtengine itself produces (the conversation's lifecycle: started,
error, closed, a rotation, a lost sideband) is named ``rtengine.<what>``, so it is never mistaken for a server event.
The detail that follows the name is plain words and values. A model whose server event has two wire spellings (an
output transcript delta carries audio or text) is named by the spelling the ``rtengine`` command's sessions produce
(audio output).
"""

from __future__ import annotations

import re
from typing import Final

from .. import events as ev

__all__ = ["describe", "event_name"]

#: The wire type of each server event model.
_WIRE: Final[dict[type, str]] = {
    ev.SessionCreated: "session.created",
    ev.SessionUpdated: "session.updated",
    ev.SpeechStarted: "input_audio_buffer.speech_started",
    ev.SpeechStopped: "input_audio_buffer.speech_stopped",
    ev.ItemAdded: "conversation.item.added",
    ev.ItemDone: "conversation.item.done",
    ev.ToolCall: "response.function_call_arguments.done",
    ev.InputTranscriptDelta: "conversation.item.input_audio_transcription.delta",
    ev.InputTranscriptDone: "conversation.item.input_audio_transcription.completed",
    ev.ResponseCreated: "response.created",
    ev.ResponseDone: "response.done",
    ev.ResponseCancelled: "response.cancelled",
    ev.AudioOut: "response.output_audio.delta",
    ev.OutputTranscriptDelta: "response.output_audio_transcript.delta",
    ev.OutputTranscriptDone: "response.output_audio_transcript.done",
    ev.ServerErrorEvent: "error",
    ev.RateLimits: "rate_limits.updated",
    ev.OutputAudioStarted: "output_audio_buffer.started",
    ev.OutputAudioStopped: "output_audio_buffer.stopped",
    ev.OutputAudioCleared: "output_audio_buffer.cleared",
    ev.ConversationCreated: "conversation.created",
}


def event_name(event: object) -> str:
    """The event's name: its wire type when the server sent it, ``rtengine.<what>`` when rtengine made it."""
    wire = _WIRE.get(type(event))
    if wire is not None:
        return wire
    if isinstance(event, ev.UnknownEvent):
        return event.type
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()
    return f"rtengine.{snake}"


def describe(event: object) -> str:
    """The detail of an event's line (may be empty)."""
    match event:
        case ev.OutputTranscriptDelta(delta=text) | ev.InputTranscriptDelta(delta=text):
            return repr(text)
        case ev.OutputTranscriptDone(transcript=text) | ev.InputTranscriptDone(transcript=text):
            return repr(text)
        case ev.SpeechStarted(audio_start_ms=start):
            return f"audio {start} ms"
        case ev.SpeechStopped(audio_end_ms=end):
            return f"audio {end} ms"
        case ev.ItemAdded(item=item) | ev.ItemDone(item=item):
            return f"{item.get('type')}, {item.get('role', '-')}"
        case ev.AudioOut(audio=audio):
            return f"{len(audio) * 3 // 4} bytes"
        case ev.ResponseDone(status=status):
            return status or ""
        case ev.ToolCall(name=name, arguments=arguments):
            return f"{name}({arguments})"
        case ev.Error(message=message, code=code, fatal=fatal):
            return f"{'fatal, ' if fatal else ''}{code + ': ' if code else ''}{message}"
        case ev.Closed(reason=reason):
            return reason
        case ev.SessionRotated(old_call_id=old, new_call_id=new, gap_ms=gap_ms):
            return f"call {old} -> {new}, no input written for {gap_ms:.0f} ms"
        case ev.SidebandLost(code=code, reason=reason):
            return f"{code if code is not None else 'no close frame'}: {reason}"
        case ev.SidebandRestored(attempts=attempts):
            return f"after {attempts} join(s)"
        case _:
            return ""
