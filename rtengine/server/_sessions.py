"""Applying a ``session.update`` to the session, as the API shows it afterwards.

Objects merge field by field, except an audio ``format`` (replaced whole: ``audio/pcmu`` has no ``rate``) and a
turn detection of another ``type``: it replaces the old one (with that
type's defaults), so ``semantic_vad`` never carries ``server_vad``'s ``threshold`` and the like. ``model`` is
applied like any field.
"""

from __future__ import annotations

from typing import Any

from ._shapes import TURN_DETECTION_DEFAULTS, merge

__all__ = ["apply_session_update"]


def apply_session_update(session: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``session`` with ``update`` applied."""
    merged = merge(session, update)
    for direction in ("input", "output"):  # a format is replaced whole: G.711 has no ``rate``
        fmt = ((update.get("audio") or {}).get(direction) or {}).get("format")
        if isinstance(fmt, dict):
            merged["audio"][direction]["format"] = dict(fmt)
    new = ((update.get("audio") or {}).get("input") or {}).get("turn_detection")
    old = ((session.get("audio") or {}).get("input") or {}).get("turn_detection")
    if isinstance(new, dict) and (not isinstance(old, dict) or new.get("type", old.get("type")) != old.get("type")):
        base = TURN_DETECTION_DEFAULTS.get(str(new.get("type")), {})
        merged["audio"]["input"]["turn_detection"] = {**base, **new}
    return merged
