"""Read-only snapshots of the JSON values a config carries (``SessionConfig.extra``, ``FunctionTool.parameters``).

A frozen dataclass that keeps a caller's dict keeps it by reference: a change the caller makes later reaches the
config, past its validation and past anything made from it once (the session JSON a client encodes once per
session). :func:`freeze` copies such a value at construction into dicts and lists that refuse changes. They are a
``dict`` and a ``list`` still — JSON encodes them as such, they compare equal to plain ones, ``dict(...)`` of one
is a plain (mutable) dict — and, as a tuple's, a ``copy.copy``/``deepcopy`` of one is itself (pickle keeps them
frozen).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze"]

_READ_ONLY = "a config's JSON values are read-only: build a new config (dataclasses.replace) instead"


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(_READ_ONLY)


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes (made by :func:`freeze`)."""

    __slots__ = ()

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return FrozenDict, (dict(self),)

    def __copy__(self) -> FrozenDict:
        return self  # it cannot change: a copy is itself (as a tuple's)

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self


class FrozenList(list[Any]):
    """A list that refuses changes (made by :func:`freeze`)."""

    __slots__ = ()

    __setitem__ = _refuse
    __delitem__ = _refuse
    __iadd__ = _refuse
    __imul__ = _refuse
    append = _refuse
    extend = _refuse
    insert = _refuse
    pop = _refuse
    remove = _refuse
    clear = _refuse
    sort = _refuse
    reverse = _refuse

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return FrozenList, (list(self),)

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON-like value: mappings become :class:`FrozenDict`, lists :class:`FrozenList`,
    tuples tuples of frozen values; anything else is kept as it is (strings, numbers, None are immutable)."""
    if isinstance(value, FrozenDict | FrozenList):
        return value  # already a snapshot (its values are frozen too)
    if isinstance(value, Mapping):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    if isinstance(value, tuple):
        return tuple(freeze(item) for item in value)
    return value
