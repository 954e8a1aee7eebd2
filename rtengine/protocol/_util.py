"""Small helpers shared by the trio-side modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collapse_single_group", "describe_exception", "sole_leaf"]


def sole_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The single exception inside nested one-member groups, or ``None`` when there are several."""
    current: BaseException = group
    while isinstance(current, BaseExceptionGroup):
        if len(current.exceptions) != 1:
            return None
        current = current.exceptions[0]
    return current


@contextmanager
def collapse_single_group() -> Iterator[None]:
    """Re-raise an exception group holding exactly one exception as that exception.

    rtengine's context managers hold nurseries around the caller's block; with strict exception groups an
    error raised in the block would come out wrapped (twice, under trio-asyncio). Callers expect their own
    exception back, so a lone leaf is unwrapped; a real group (several failures) is left as it is.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = sole_leaf(group)
        if leaf is None:
            raise
        raise leaf from leaf.__cause__


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` of an adapter's exception and of what caused it. Library errors often carry an empty
    message (httpx's ``ConnectError``, trio's ``BrokenResourceError`` around a refused TLS certificate); the
    reason is in the chained exception, so the innermost one with a message is added in parentheses."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    root, seen = exc, {id(exc)}
    while (inner := root.__cause__ or root.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        root = inner
    if root is not exc and str(root) and str(root) not in text:
        text += f" ({type(root).__name__}: {root})"
    return text
