"""Field readers shared by the server-event builders (pure): a wrongly typed optional field reads as absent; a
missing or wrongly typed required one raises :class:`Missing`, which the parser turns into a warning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Missing", "int_field", "num_field", "obj_field", "req_obj", "req_str", "str_field"]


class Missing(Exception):
    """A required field is absent or has the wrong type."""


def str_field(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None


def int_field(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def num_field(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def obj_field(obj: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def req_str(obj: Mapping[str, Any], key: str) -> str:
    value = str_field(obj, key)
    if value is None:
        raise Missing(key)
    return value


def req_obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj_field(obj, key)
    if value is None:
        raise Missing(key)
    return value
