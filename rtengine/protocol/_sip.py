"""The rest of the Calls API for SIP calls, pure: accept / reject / refer bodies and URLs, and the answers.

``POST /v1/realtime/calls/{call_id}/accept`` (the session config as JSON), ``…/reject`` (optional SIP
``status_code``), ``…/refer`` (``target_uri``) and ``…/hangup`` (empty). The call id is validated
(:func:`~rtengine.protocol.validate_call_id`) before it enters a URL; a target URI is checked before it enters a
body. The API answers every one with an empty 2xx; :func:`interpret_control_response` turns any other answer into
:class:`~rtengine.CallNotFound` (404 ``call_id_not_found``) or :class:`~rtengine.CallRejected`.

Which are retried (the HTTP adapter follows :data:`RETRIED`): ``hangup`` and ``reject`` end a call, so a second
attempt cannot do anything the first did not mean (a 404 on a retry means the first attempt got through and is
taken as success); ``accept`` and ``refer`` are never retried once the request may have reached the server — a
second accept would answer an error for a call that was in fact accepted, a second refer could transfer twice —
only when the connection could not even be made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Final, Literal

from ._calls import Scrub, check_control_answer, validate_call_id
from ._errors import ConfigError

__all__ = [
    "RETRIED",
    "ControlAction",
    "control_url",
    "interpret_control_response",
    "refer_body",
    "reject_body",
    "validate_target_uri",
]

ControlAction = Literal["accept", "reject", "refer", "hangup"]
#: The actions retried after a 5xx or a transport error (see the module docstring).
RETRIED: Final[frozenset[ControlAction]] = frozenset({"reject", "hangup"})
_WORDS: Final[Mapping[ControlAction, str]] = {
    "accept": "accept",
    "reject": "reject",
    "refer": "refer",
    "hangup": "hang-up",
}
#: ``tel:`` or ``sip:``/``sips:`` URIs of visible ASCII, as the API documents for ``target_uri``.
_TARGET_URI: Final = re.compile(r"(?i:tel|sips?):[\x21-\x7e]{1,2000}")


def control_url(calls_url: str, call_id: str, action: ControlAction) -> str:
    """``{calls_url}/{call_id}/{action}``, the id validated first (:class:`~rtengine.InvalidCallId`)."""
    return f"{calls_url.rstrip('/')}/{validate_call_id(call_id)}/{action}"


def validate_target_uri(target_uri: str) -> str:
    """Return ``target_uri`` if it is a ``tel:``, ``sip:`` or ``sips:`` URI of visible ASCII (no spaces or control
    characters), else raise :class:`~rtengine.ConfigError`."""
    if not _TARGET_URI.fullmatch(target_uri):
        raise ConfigError(f"target_uri must be a tel:, sip: or sips: URI without spaces, got {target_uri[:200]!r}")
    return target_uri


def refer_body(target_uri: str) -> bytes:
    """The JSON body of a refer: ``{"target_uri": …}`` (the URI checked first)."""
    return json.dumps({"target_uri": validate_target_uri(target_uri)}, separators=(",", ":")).encode("ascii")


def reject_body(status_code: int | None) -> bytes:
    """The JSON body of a reject: ``{}`` (the API sends 603 Decline) or ``{"status_code": n}`` for a SIP final
    response code ``n`` (400..699; :class:`~rtengine.ConfigError` otherwise)."""
    if status_code is None:
        return b"{}"
    if isinstance(status_code, bool) or not isinstance(status_code, int) or not 400 <= status_code <= 699:
        raise ConfigError(f"status_code must be a SIP error code within 400..699, got {status_code!r}")
    return b'{"status_code":%d}' % status_code


def interpret_control_response(
    action: ControlAction,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    truncated: bool = False,
    now: float | None = None,
    scrub: Scrub | None = None,
) -> None:
    """Accept the answer to ``action`` (any 2xx; the API sends 200 with an empty body) or raise.

    404 with ``error.code == "call_id_not_found"`` → :class:`~rtengine.CallNotFound` (``.status == 404``); any
    other non-2xx → :class:`~rtengine.CallRejected` with ``.status``, ``.body`` (cut to 2000 characters) and
    ``.retry_after``. ``scrub`` removes secrets from the error's text (as for call creation; default:
    credential-shaped strings only).
    """
    check_control_answer(_WORDS[action], status, headers, body, truncated=truncated, now=now, scrub=scrub)
