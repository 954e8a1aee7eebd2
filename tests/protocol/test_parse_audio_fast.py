"""The audio-delta fast path of the parser reads exactly what the general field readers read."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol._fields import Missing
from rtengine.protocol._parse import _audio_delta, _audio_delta_geometry

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 50_000), st.text(max_size=8), st.floats(0, 10))
_KEYS = st.sampled_from(["delta", "item_id", "response_id", "event_id", "sample_rate", "channels", "extra"])


@given(
    fields=st.dictionaries(_KEYS, _VALUES, max_size=7),
    output_format=st.sampled_from(["audio/pcm", "audio/pcmu", "audio/pcma", "audio/other"]),
)
def test_the_fast_path_reads_what_the_field_readers_read(fields: dict[str, Any], output_format: str) -> None:
    event = {"type": "response.output_audio.delta", **fields}
    try:
        expected = _audio_delta_geometry(event, output_format)
    except Missing:
        with pytest.raises(Missing):
            _audio_delta(event, output_format)
        return
    assert _audio_delta(event, output_format) == expected
