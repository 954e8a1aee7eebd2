"""The parser's JSON fast path (``raw_decode`` when the frame is one document with nothing around it) reads every
frame exactly as ``json.loads`` does: the same value, or an error where ``json.loads`` has one."""

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rtengine.protocol._events import ProtocolWarning
from rtengine.protocol._parse import _loads, parse_server_event, parse_server_message

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_SPACE = st.text(alphabet=" \t\r\n", max_size=3)
_TAIL = st.one_of(_SPACE, st.text(max_size=4))


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


@given(value=_JSON, before=_SPACE, after=_TAIL, compact=st.booleans())
def test_the_fast_path_reads_what_json_loads_reads(value: Any, before: str, after: str, compact: bool) -> None:
    text = before + json.dumps(value, separators=(",", ":") if compact else None) + after
    try:
        expected = json.loads(text)
    except ValueError:
        try:
            _loads(text)
        except ValueError:
            return
        raise AssertionError(f"json.loads refuses {text!r}, the fast path did not") from None
    assert _same(_loads(text), expected)


@given(text=st.text(max_size=40))
def test_any_text_parses_as_with_json_loads(text: str) -> None:
    """Whatever the frame: the same typed event (or warning kind) as parsing ``json.loads``' value."""
    got = parse_server_event(text)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        assert isinstance(got, ProtocolWarning)
        return
    if isinstance(value, dict):
        assert repr(got) == repr(parse_server_message(value))
    else:
        assert isinstance(got, ProtocolWarning)
