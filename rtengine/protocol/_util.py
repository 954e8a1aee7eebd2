"""Small helpers shared by the trio-side modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["causes", "collapse_single_group", "describe_exception", "sole_leaf"]


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
    reason is in the chained exception, so the innermost one with a message is added in parentheses (a group with
    one member counts as that member; a message already shown is not repeated)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    innermost = [inner for inner in causes(exc) if _message(inner)]
    if innermost and innermost[-1] is not exc and _message(innermost[-1]) not in text:
        root = innermost[-1]
        text += f" ({type(root).__name__}: {_message(root)})"
    return text


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it, outermost first: its ``__cause__``/``__context__`` chain, entering
    groups of one member (a group of several ends the walk)."""
    chain, seen = [exc], {id(exc)}
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, BaseExceptionGroup) and len(current.exceptions) == 1:
            inner: BaseException | None = current.exceptions[0]
        else:
            inner = current.__cause__ or current.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        chain.append(inner)
        current = inner
    return chain


def _message(exc: BaseException) -> str:
    """An exception's own message (a group's without the "(N sub-exceptions)" suffix)."""
    return exc.message if isinstance(exc, BaseExceptionGroup) else str(exc)
