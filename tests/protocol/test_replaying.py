"""A replay that survives the loss of its socket: what is still owed, what is asked for first."""

from __future__ import annotations

from typing import Any

from rtengine.protocol._replaying import ReplayProgress


def text(n: int, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"t{n}"}]}
    if item_id is not None:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


def test_an_answered_item_is_never_owed_again_and_an_unanswered_one_is_asked_for_first() -> None:
    progress = ReplayProgress((text(0, "a"), text(1, "b"), text(2, "c")), complete=True)
    assert progress.in_doubt() == []  # nothing written yet: nothing to ask
    for n, item in enumerate(progress.writing()[:2]):
        progress.written(item, f"e{n}")  # "c" never went out
    assert progress.added_item("a")
    # the socket is lost: "b" went out without an answer, "c" never went out
    assert progress.in_doubt() == ["b"]
    progress.asking("b", "r1")
    assert progress.retrieved("b")  # found: added, not written again
    assert [i["item"]["id"] for i in progress.writing()] == ["c"]
    assert (progress.added, progress.refused, progress.done) == (2, 0, False)


def test_an_item_in_doubt_that_the_server_does_not_hold_is_written_again() -> None:
    progress = ReplayProgress((text(0, "a"), text(1, "b")), complete=True)
    for n, item in enumerate(progress.writing()):
        progress.written(item, f"e{n}")
    assert progress.in_doubt() == ["a", "b"]
    progress.asking("a", "r0")
    progress.asking("b", "r1")
    assert progress.not_found("r0")
    assert progress.retrieved("b")
    assert not progress.asked
    assert [i["item"]["id"] for i in progress.writing()] == ["a"]
    assert progress.refused_event("e9") is False  # not ours


def test_an_item_without_an_id_is_given_one_so_it_can_be_asked_for() -> None:
    progress = ReplayProgress((text(0),), complete=True)
    (item,) = progress.writing()
    chosen = item["item"]["id"]
    assert isinstance(chosen, str)
    assert chosen.startswith("item_")
    assert len(chosen) <= 32
    progress.written(item, "e0")
    assert progress.in_doubt() == [chosen]
    assert not progress.added_item("someone else's")
    assert progress.added_item(chosen)
    assert progress.done


def test_a_refusal_settles_the_item_and_a_give_up_counts_what_was_left() -> None:
    progress = ReplayProgress((text(0, "a"), text(1, "b")), complete=False)
    first, second = progress.writing()
    progress.written(first, "e0")
    progress.written(second, "e1")
    assert progress.refused_event("e0")
    assert progress.give_up() == 1
    assert (progress.refused, progress.unconfirmed, progress.done, progress.complete) == (1, 1, True, False)
