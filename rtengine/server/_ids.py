"""The ids the local server makes for calls and sessions, shaped like the API's.

As recorded from api.openai.com (pydantic/pydantic-ai, MIT, tests/realtime/cassettes): call ids are ``rtc_u<N>_``
plus letters and digits (``rtc_u1_ETYJSp3oMdsOb7HW9eMflgesrIs0XaTn``); a call's session id is ``sess_`` plus the
call id's tail (call ``rtc_u0_E4TeWIkEAnw5DOa1vyO18`` → session ``sess_u0_E4TeWIkEAnw5DOa1vyO18``); a plain
websocket's session id is ``sess_`` plus 21 letters and digits (``sess_E6U0txeK1UA23CH3RdweL``).
"""

from __future__ import annotations

import secrets
import string
from typing import Final

__all__ = ["call_id", "session_id", "session_id_of_call"]

_ALPHABET: Final = string.ascii_letters + string.digits
#: The shard part of the recorded call ids (``u0``, ``u1``, ``u2`` were seen; the server always says ``u1``).
CALL_SHARD: Final = "u1"


def _token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def call_id() -> str:
    """A fresh call id: ``rtc_u1_`` and 32 letters and digits, like the recorded ``rtc_u1_…`` ids."""
    return f"rtc_{CALL_SHARD}_{_token(32)}"


def session_id_of_call(call: str) -> str:
    """The id of a call's session: ``sess_`` and the call id after ``rtc_`` (as the API names them)."""
    return "sess_" + call.removeprefix("rtc_")


def session_id() -> str:
    """A fresh id for a plain websocket's session: ``sess_`` and 21 letters and digits."""
    return f"sess_{_token(21)}"
