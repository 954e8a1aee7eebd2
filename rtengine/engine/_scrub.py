"""The secrets scrubber of a conversation: its client's key and the secrets of its base URL (see
:mod:`rtengine.protocol._secrets`). Built once per conversation; its brain passes every server error message and
protocol warning through it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol._errors import ConfigError
from ..protocol._secrets import Scrubber

if TYPE_CHECKING:
    from ._seams import Endpoint

__all__ = ["endpoint_scrubber"]


def endpoint_scrubber(endpoint: Endpoint) -> Scrubber:
    """A scrubber for ``endpoint``'s auth headers (none when no key is configured: starting then fails anyway)
    and the secrets in its realtime base URL."""
    try:
        headers = endpoint.auth_headers()
    except ConfigError:
        headers = {}
    return Scrubber.of(headers, (endpoint.realtime_base_url,))
