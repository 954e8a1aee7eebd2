"""rtengine's own text frames (``text_frame``) are the frames wsproto writes, but for the random masking key: a
wsproto server reads each as one whole text message with the same text; and a lone surrogate is refused as
wsproto refuses it."""

import struct

import pytest
import wsproto.events as wse
from hypothesis import given, settings
from hypothesis import strategies as st
from ws_peer import open_wsproto_pair

from rtengine.adapters._ws_frames import text_frame


def _unmasked(frame: bytes) -> tuple[bytes, bytes]:
    """The frame's header (without its key) and its payload, unmasked."""
    length = frame[1] & 0x7F
    start = 2 + {126: 2, 127: 8}.get(length, 0)
    key, payload = frame[start : start + 4], frame[start + 4 :]
    return frame[:start], bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@settings(max_examples=200, deadline=None)  # 64 KiB frames unmasked in Python: slow on a loaded machine
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.integers(0, 70_000).map(lambda n: "a" * n),
        st.sampled_from(["", "x" * 125, "x" * 126, "é" * 63, "x" * 65535, "x" * 65536]),
    )
)
def test_a_text_frame_is_wsprotos_but_for_the_key(text: str) -> None:
    client, server = open_wsproto_pair()
    ours, theirs = text_frame(text), client.send(wse.TextMessage(data=text))
    assert _unmasked(ours) == _unmasked(theirs)
    assert ours[1] & 0x80  # masked, as a client's frames must be
    server.receive_data(ours)
    events = list(server.events())
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, wse.TextMessage)
    assert (event.data, event.frame_finished, event.message_finished) == (text, True, True)


def test_each_frame_gets_a_fresh_key() -> None:
    keys = {text_frame("hello")[2:6] for _ in range(50)}
    assert len(keys) > 40


def test_the_length_forms() -> None:
    assert text_frame("x" * 125)[1] == 0x80 | 125
    assert text_frame("x" * 126)[1:4] == bytes((0xFE,)) + struct.pack("!H", 126)
    assert text_frame("x" * 65536)[1:10] == bytes((0xFF,)) + struct.pack("!Q", 65536)


def test_a_lone_surrogate_is_refused_as_wsproto_refuses_it() -> None:
    client, _ = open_wsproto_pair()
    with pytest.raises(UnicodeEncodeError):
        client.send(wse.TextMessage(data="\ud800"))
    with pytest.raises(UnicodeEncodeError):
        text_frame("\ud800")
