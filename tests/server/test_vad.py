"""The local server's VAD pieces as plain values: input formats and G.711 decoding, the turn-detection settings
and how a ``session.update`` switching VAD variants is settled."""

from typing import Any

from rtengine.server._sessions import apply_session_update
from rtengine.server._shapes import default_session, merge
from rtengine.server._vad import InputFormat, VadSettings, input_format


def test_g711_input_is_decoded_to_pcm16() -> None:
    assert InputFormat("audio/pcmu", 8000).pcm16(b"\x00\xff") == (-32124).to_bytes(2, "little", signed=True) + bytes(2)
    assert InputFormat("audio/pcma", 8000).pcm16(b"\xaa\x55") == (32256).to_bytes(2, "little") + (-8).to_bytes(
        2, "little", signed=True
    )
    assert InputFormat().pcm16(b"\x01\x02") == b"\x01\x02"


def test_input_format_follows_the_session() -> None:
    def session(fmt: Any) -> dict[str, Any]:
        return {"audio": {"input": {"format": fmt}}}

    assert input_format({}) == InputFormat("audio/pcm", 24000)
    assert input_format(session({"type": "audio/pcma"})).bytes_per_ms == 8
    assert input_format(session({"type": "audio/pcmu"})).frame_bytes == 80
    assert input_format(session({"type": "audio/pcm", "rate": 24000})).frame_bytes == 480


def test_settings_honour_the_parameters_and_ignore_bad_values() -> None:
    custom = VadSettings.of(
        {"type": "server_vad", "threshold": 0.9, "prefix_padding_ms": 100, "silence_duration_ms": 700}
    )
    assert (custom.level, custom.prefix_padding_ms, custom.silence_duration_ms) == (0.09, 100, 700)
    bad = VadSettings.of({"type": "server_vad", "threshold": "loud", "silence_duration_ms": -5, "idle_timeout_ms": 0})
    assert bad == VadSettings()
    assert VadSettings.of({"type": "server_vad", "idle_timeout_ms": 5000}).idle_timeout_ms == 5000
    quiet = VadSettings.of({"type": "server_vad", "create_response": False, "interrupt_response": False})
    assert (quiet.create_response, quiet.interrupt_response) == (False, False)
    eager = {e: VadSettings.of({"type": "semantic_vad", "eagerness": e}).silence_duration_ms for e in ("low", "high")}
    assert eager == {"low": 1000, "high": 200}


def _update(before: dict[str, Any], detection: Any) -> Any:
    update = {"audio": {"input": {"turn_detection": detection}}}
    return apply_session_update(before, update)["audio"]["input"]["turn_detection"]


def test_switching_vad_variants_starts_from_the_new_variants_defaults() -> None:
    server = default_session("gpt-realtime")
    semantic = _update(server, {"type": "semantic_vad", "eagerness": "low"})
    assert semantic == {"type": "semantic_vad", "eagerness": "low", "create_response": True, "interrupt_response": True}
    back = _update(merge(server, {"audio": {"input": {"turn_detection": semantic}}}), {"type": "server_vad"})
    assert back == server["audio"]["input"]["turn_detection"]
    off = merge(server, {"audio": {"input": {"turn_detection": None}}})
    assert _update(off, {"type": "server_vad", "silence_duration_ms": 900})["silence_duration_ms"] == 900
    assert _update(off, {"type": "server_vad"})["threshold"] == 0.5
    assert _update(server, {"silence_duration_ms": 300})["threshold"] == 0.5  # same variant: a plain merge
