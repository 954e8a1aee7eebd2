"""The ids the local server makes for calls and sessions, shaped like the API's.

As recorded from api.openai.com (pydantic/pydantic-ai, MIT, tests/realtime/cassettes): call ids are ``rtc_u<N>_``
plus letters and digits (``rtc_u1_ETYJSp3oMdsOb7HW9eMflgesrIs0XaTn``); a call's session id is ``sess_`` plus the
call id's tail (call ``rtc_u0_E4TeWIkEAnw5DOa1vyO18`` → session ``sess_u0_E4TeWIkEAnw5DOa1vyO18``); a plain
websocket's session id is ``sess_`` plus 21 letters and digits (``sess_E6U0txeK1UA23CH3RdweL``). Items, responses,
events and conversations are the prefix plus 21 letters and digits (``item_E6U0x4CPpGXckBREkhDss``); a function call's
``call_id`` is ``call_`` plus 16 (``call_a1B2c3D4e5F6g7H8``), all as recorded.
"""

from __future__ import annotations

import secrets
import string
from typing import Final

__all__ = ["ID_ALPHABET", "call_id", "new_id", "session_id", "session_id_of_call"]

ID_ALPHABET: Final = string.ascii_letters + string.digits
#: The length of the random part of each kind of id, by prefix (21 unless listed).
TOKEN_LENGTHS: Final = {"call": 16}
#: The shard part of the recorded call ids (``u0``, ``u1``, ``u2`` were seen; the server always says ``u1``).
CALL_SHARD: Final = "u1"


def _token(length: int) -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def call_id() -> str:
    """A fresh call id: ``rtc_u1_`` and 32 letters and digits, like the recorded ``rtc_u1_…`` ids."""
    return f"rtc_{CALL_SHARD}_{_token(32)}"


def session_id_of_call(call: str) -> str:
    """The id of a call's session: ``sess_`` and the call id after ``rtc_`` (as the API names them)."""
    return "sess_" + call.removeprefix("rtc_")


def session_id() -> str:
    """A fresh id for a plain websocket's session: ``sess_`` and 21 letters and digits."""
    return f"sess_{_token(21)}"


def new_id(prefix: str) -> str:
    """A fresh id such as ``item_…``: the prefix, ``_`` and letters and digits, as long as the API's."""
    return f"{prefix}_{_token(TOKEN_LENGTHS.get(prefix, 21))}"
