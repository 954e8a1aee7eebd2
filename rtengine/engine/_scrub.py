"""The secrets scrubber of a conversation: its client's key and the secrets of its base URL (see
:mod:`rtengine.protocol._secrets`). Built once per conversation; its brain passes every server error message and
protocol warning through it. Its secrets are gathered on its first use (an error to scrub), not when the
conversation is built: parsing the base URL and the headers is off the time to answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol._errors import ConfigError
from ..protocol._secrets import Scrubber

if TYPE_CHECKING:
    from ._seams import Endpoint

__all__ = ["endpoint_scrubber"]


def endpoint_scrubber(endpoint: Endpoint) -> Scrubber:
    """A scrubber for ``endpoint``'s auth headers (none when no key is configured: starting then fails anyway)
    and the secrets in its realtime base URL, gathered when it is first called."""
    return _EndpointScrubber(endpoint)


def _secrets_of(endpoint: Endpoint) -> Scrubber:
    try:
        headers = endpoint.auth_headers()
    except ConfigError:
        headers = {}
    return Scrubber.of(headers, (endpoint.realtime_base_url,))


class _EndpointScrubber(Scrubber):
    """A :class:`Scrubber` whose secrets are those of an endpoint, read on the first call."""

    __slots__ = ("_endpoint",)

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self._endpoint: Endpoint | None = endpoint

    def __repr__(self) -> str:
        return "<Scrubber secrets=unread>" if self._endpoint is not None else super().__repr__()

    def __call__(self, text: str) -> str:
        if self._endpoint is not None:
            self._secrets = _secrets_of(self._endpoint)._secrets
            self._endpoint = None
        return super().__call__(text)
