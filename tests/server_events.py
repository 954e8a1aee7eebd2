"""Which events of a local server's record the SDK validation checks (every one, bar explicit exemptions)."""

from collections.abc import Iterator
from typing import Any

from rtengine.server import ServerRecord

__all__ = ["RAW_INJECTIONS", "sent_events"]

#: What the records keep for the raw frames fault injection sends (not JSON events, by design).
RAW_INJECTIONS = ("<malformed>", "<binary>")


def sent_events(record: ServerRecord) -> Iterator[tuple[str, Any]]:
    """``(where, event)`` for every event the server sent: on each websocket, on each call's data channel.

    Exempt, explicitly: the frames fault injection makes invalid on purpose (their ``event_id`` is in
    ``record.injected_event_ids``; raw injected frames are recorded as ``<malformed>``/``<binary>``)."""
    streams = [(f"websocket {c.path} #{n}", c.frames_out) for n, c in enumerate(record.connections)]
    streams += [(f"data channel of {c.call_id}", c.data_frames_out) for c in record.calls]
    for where, frames in streams:
        for frame in frames:
            if isinstance(frame, str) and frame in RAW_INJECTIONS:
                continue
            if isinstance(frame, dict) and frame.get("event_id") in record.injected_event_ids:
                continue
            yield where, frame
