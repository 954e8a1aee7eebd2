"""Item validation of ``conversation.item.create`` (pure): what the API accepts is accepted and shows up as a valid
SDK item; anything else is refused with the offending ``param``."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sdk_events import sdk_problems

from rtengine.server._items import PART_TYPES, create_error, item_error
from rtengine.server._model import ModelState

TEXT = st.text(max_size=20)
PARTS = {
    "input_text": st.fixed_dictionaries({"type": st.just("input_text"), "text": TEXT}),
    "input_audio": st.fixed_dictionaries({"type": st.just("input_audio")}, optional={"transcript": TEXT}),
    "output_text": st.fixed_dictionaries({"type": st.just("output_text"), "text": TEXT}),
}


@st.composite
def valid_items(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["message", "function_call", "function_call_output"]))
    if kind == "function_call":
        return {"type": kind, "name": draw(TEXT), "call_id": draw(TEXT), "arguments": draw(TEXT)}
    if kind == "function_call_output":
        return {"type": kind, "call_id": draw(TEXT), "output": draw(TEXT)}
    role = draw(st.sampled_from(sorted(PART_TYPES)))
    usable = [PARTS[t] for t in PART_TYPES[role] if t in PARTS]
    return {"type": "message", "role": role, "content": draw(st.lists(st.one_of(*usable), max_size=3))}


@given(valid_items())
def test_valid_items_are_accepted_and_echoed_as_valid_sdk_items(item: dict[str, Any]) -> None:
    assert item_error(item, None) is None
    full, previous = ModelState({}).new_item(item)
    event = {"type": "conversation.item.added", "event_id": "event_1", "previous_item_id": previous, "item": full}
    assert sdk_problems(event) == []


@given(valid_items(), st.text(min_size=1, max_size=10).filter(lambda k: k not in {"id", "object", "status"}))
def test_an_unknown_field_is_refused_by_name(item: dict[str, Any], key: str) -> None:
    if key in item:
        return
    error = item_error({**item, key: 1}, "evt_1")
    assert error is not None
    assert (error["error"]["code"], error["error"]["param"]) == ("unknown_parameter", f"item.{key}")
    assert error["error"]["event_id"] == "evt_1"


@given(st.sampled_from(["text", "audio", "input_text", "output_audio"]))
def test_assistant_content_must_be_output_text(part_type: str) -> None:
    item = {"type": "message", "role": "assistant", "content": [{"type": part_type, "text": "hi"}]}
    error = item_error(item, None)
    assert error is not None
    assert error["error"]["message"] == f"Invalid value: '{part_type}'. Value must be 'output_text'."
    assert error["error"]["param"] == "item.content[0].type"


def test_only_item_creates_are_checked() -> None:
    assert create_error({"type": "response.create"}) is None
    assert create_error({"type": "conversation.item.create", "item": "not an object"}) is None
    bad = {"type": "conversation.item.create", "event_id": "e", "item": {"type": "nope"}}
    error = create_error(bad)
    assert error is not None
    assert (error["error"]["param"], error["error"]["event_id"]) == ("item.type", "e")
