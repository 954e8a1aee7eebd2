"""``encode`` renders an audio append without scanning its base64 when it can: always the same text as
``json.dumps`` (compact, non-ASCII kept), whatever the payload holds."""

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol._brain import Brain
from rtengine.protocol._lifecycle import ConversationStats
from rtengine.protocol._payloads import encode, input_audio_append


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@given(pcm=st.binary(max_size=2000))
def test_a_stamped_append_renders_as_json_dumps(pcm: bytes) -> None:
    payload = Brain(ConversationStats(), truncate=True).stamp(input_audio_append(pcm))
    text = encode(payload)
    assert text == _dumps(payload)
    assert base64.b64decode(json.loads(text)["audio"]) == pcm


@given(
    audio=st.one_of(st.text(max_size=40), st.integers(), st.none()),
    event_id=st.one_of(st.text(max_size=12), st.integers()),
    extra=st.dictionaries(st.sampled_from(["item", "x"]), st.text(max_size=4), max_size=1),
    order=st.booleans(),
)
def test_any_append_shaped_payload_renders_as_json_dumps(audio: Any, event_id: Any, extra: dict[str, str],
                                                         order: bool) -> None:  # fmt: skip
    payload: dict[str, Any] = {"type": "input_audio_buffer.append", "audio": audio, "event_id": event_id, **extra}
    if order:
        payload = {"event_id": event_id, "type": "input_audio_buffer.append", "audio": audio}
    assert encode(payload) == _dumps(payload)
