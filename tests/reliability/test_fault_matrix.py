"""The engine fault matrix (issue #15): each case a conversation against a faulty server over loopback, asserting
the documented outcome, a time bound, and that nothing leaks (no engine task, no connection left open on a server).

Outcomes, as documented in the README and the engine's modules: a start that fails raises inline — a refused or
failed call creation ``CallRejected`` (retried first when 429/5xx, waiting a ``Retry-After`` up to its ceiling), an
unusable ``Location`` ``InvalidLocation``, an unusable answer ``InvalidAnswer``, a redirect ``CallRejected`` (never
followed), a stall or a transport failure ``ConnectFailed``; a background sideband join that fails ends with
``Error("sideband_join_failed")`` then ``Closed("error")``; a fatal server ``error`` or a lost socket with an
``Error`` then ``Closed("error")``; a benign error, a malformed, binary or unknown frame is non-fatal (the
conversation goes on); a sideband lost abnormally is joined again (``SidebandLost``/``SidebandRestored``); the
caller's exception, an outer cancellation at any time, an absent or slow consumer end with ``Closed("requested")``.

The fast part runs in CI (``pytest``); the ``long`` marker (``pytest -m long``; excluded by default) adds the stall
cases that wait for real timeouts.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from matrix_harness import (
    BodyFailed,
    Case,
    cancel_after,
    never_read,
    raise_in_body,
    read_all,
    rejoin_then_talk,
    run_case,
    slow_reader,
    sole,
)

import rtengine
from rtengine.adapters._peer import PeerService
from rtengine.events import Closed, Error, SidebandLost, SidebandRestored
from rtengine.server import Faults

W, R = "websocket", "webrtc"
ANSWER = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
LOC = "/v1/realtime/calls/rtc_u1_abc"
SDP = {"content-type": "application/sdp"}
NO_REJOIN = {"sideband_rejoin_attempts": 0}


def http(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if "content-length" not in headers:
        head += f"content-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def refused(case_id: str, raises: type[BaseException], **fields: object) -> Case:
    return Case(case_id, raises=raises, closed=None, **fields)  # type: ignore[arg-type]


CASES = [
    # Call creation: every refusal is a CallRejected, raised inline (429/5xx after the retries).
    *[refused(f"call_{s}", rtengine.CallRejected, transport=R, faults=Faults(call_status=s)) for s in (400, 401, 403)],
    *[refused(f"call_{s}", rtengine.CallRejected, transport=R, faults=Faults(call_status=s)) for s in (404, 429, 500)],
    *[refused(f"call_{s}", rtengine.CallRejected, transport=R, faults=Faults(call_status=s)) for s in (502, 503)],
    refused(
        "call_429_retry_after", rtengine.CallRejected, transport=R, faults=Faults(call_status=429, retry_after=0.2)
    ),
    refused(
        "call_503_retry_after_beyond_ceiling",
        rtengine.CallRejected,
        transport=R,
        faults=Faults(call_status=503, retry_after=3600),
        bound=5.0,
    ),
    refused(
        "call_stall", rtengine.ConnectFailed, transport=R, faults=Faults(call_delay=2.0), client={"call_timeout": 1.0}
    ),
    # A hostile server's answers to call creation.
    refused("location_missing", rtengine.InvalidLocation, transport=R, raw=http("201 Created", SDP, ANSWER)),
    refused(
        "location_bad_id",
        rtengine.InvalidLocation,
        transport=R,
        raw=http("201 Created", SDP | {"location": "/v1/realtime/calls/rtc_../../etc"}, ANSWER),
    ),
    refused(
        "location_huge_id",
        rtengine.InvalidLocation,
        transport=R,
        raw=http("201 Created", SDP | {"location": "/v1/realtime/calls/rtc_" + "a" * 5000}, ANSWER),
    ),
    refused(
        "redirect_301",
        rtengine.CallRejected,
        transport=R,
        raw=http("301 Moved Permanently", {"location": "http://127.0.0.1:{port}/elsewhere"}),
    ),
    refused(
        "redirect_307",
        rtengine.CallRejected,
        transport=R,
        raw=http("307 Temporary Redirect", {"location": "http://127.0.0.1:{port}/elsewhere"}),
    ),
    refused(
        "answer_not_sdp", rtengine.InvalidAnswer, transport=R, raw=http("201 Created", SDP | {"location": LOC}, b"hi")
    ),
    refused(
        "answer_not_utf8",
        rtengine.InvalidAnswer,
        transport=R,
        raw=http("201 Created", SDP | {"location": LOC}, b"v=0\xff\xfe"),
    ),
    refused(
        "answer_huge",
        rtengine.CallError,
        transport=R,
        raw=http("201 Created", SDP | {"location": LOC}, b"v=0\r\n" + b"a=x\r\n" * 400_000),
    ),
    refused(
        "answer_dripping",
        rtengine.ConnectFailed,
        transport=R,
        raw=http("201 Created", SDP | {"location": LOC}, ANSWER),
        drip=0.2,
        client={"call_timeout": 1.0},
    ),
    refused(
        "answer_truncated",
        rtengine.ConnectFailed,
        transport=R,
        raw=http("201 Created", SDP | {"location": LOC, "content-length": "5000"}, ANSWER),
        client={"call_timeout": 1.0},
    ),
    refused("answer_garbage", rtengine.ConnectFailed, transport=R, raw=b"\x00\x01garbage\r\n\r\n"),
    # Sideband joins (in the background of a WebRTC start).
    Case("join_refused_once", R, Faults(refuse_sideband_joins=1)),
    Case(
        "join_refused_always",
        R,
        Faults(refuse_sideband_joins=50),
        body=read_all,
        closed="error",
        error_code="sideband_join_failed",
    ),
    # Direct websockets (inline).
    refused("ws_rejected_403", rtengine.ConnectFailed, faults=Faults(websocket_status=403)),
    refused("ws_rejected_503", rtengine.ConnectFailed, faults=Faults(websocket_status=503, retry_after=0.1)),
    # Transport loss.
    Case(
        "ws_clean_close", W, Faults(close_after_events=2, close_mode="clean"), body=read_all, closed="transport_closed"
    ),
    Case(
        "ws_reset",
        W,
        Faults(close_after_events=2, close_mode="abrupt"),
        body=read_all,
        closed="error",
        error_code="connection_lost",
    ),
    Case("sideband_clean_close", R, Faults(close_after_events=1), body=read_all, closed="call_ended"),
    Case(
        "sideband_reset_no_rejoin",
        R,
        Faults(close_after_events=1, close_mode="abrupt"),
        body=read_all,
        client=NO_REJOIN,
        closed="error",
        error_code="connection_lost",
    ),
    *[
        Case(
            f"sideband_lost_{mode}_rejoined",
            R,
            Faults(drop_sideband=mode, drop_sideband_after=1),
            body=rejoin_then_talk,
        )
        for mode in ("reset", "eof", "1011")
    ],
    Case("dead_peer_on_close", W, Faults(ignore_client_close=True)),
    # Frames.
    Case("frame_malformed_json", W, Faults(inject=("malformed_json",))),
    Case("frame_binary", W, Faults(inject=("binary",)), error_code="unexpected_binary_frame"),
    Case(
        "frame_oversized",
        W,
        Faults(inject=("oversized",), oversized_bytes=2 << 20),
        body=read_all,
        client={"max_message_size": 1 << 20},
        closed="error",
        error_code="message_too_big",
    ),
    Case("frame_unknown_event", W, Faults(inject=("unknown_event",))),
    # Each class of server error: fatal ones end the conversation, a benign one does not.
    *[
        Case(f"error_{code}", W, Faults(inject=(f"error:{code}",)), body=read_all, closed="error", error_code=code)
        for code in ("server_error", "invalid_value", "rate_limit_exceeded", "session_expired", "invalid_api_key")
    ],
    Case(
        "error_benign",
        W,
        Faults(inject=("error:response_cancel_not_active",)),
        error_code="response_cancel_not_active",
    ),
    # Consumers and the caller's block.
    Case("consumer_absent", W, body=never_read),
    Case("consumer_slow", W, body=slow_reader),
    refused("body_raises_ws", BodyFailed, body=raise_in_body),
    refused("body_raises_rtc", BodyFailed, transport=R, body=raise_in_body),
    # Outer cancellation at various times, from before the start returns to mid-conversation.
    *[Case(f"cancel_{t}s_{tr}", tr, body=cancel_after(t)) for tr in (W, R) for t in (0.0, 0.01, 0.05, 0.2)],
    Case("media_unreachable", R, Faults(media_unreachable=True)),
]
#: Stalls that wait for real timeouts (seconds each): run with ``-m long``.
LONG_CASES = [
    Case(
        "join_stall",
        R,
        Faults(sideband_accept_delay=3.0),
        body=read_all,
        client={"connect_timeout": 1.0},
        closed="error",
        error_code="sideband_join_failed",
    ),
    refused(
        "ws_accept_stall",
        rtengine.ConnectFailed,
        faults=Faults(websocket_accept_delay=3.0),
        client={"connect_timeout": 1},
    ),
    *[replace(case, id=case.id + "_again") for case in CASES if case.id.startswith(("cancel_", "sideband_lost_"))],
]


def check(case: Case, outcome: object) -> None:
    from matrix_harness import Outcome

    assert isinstance(outcome, Outcome)
    escaped = sole(outcome.escaped)
    if case.raises is not None:
        assert isinstance(escaped, case.raises), repr(outcome.escaped)
        assert isinstance(escaped, rtengine.RealtimeError | BodyFailed)
        assert [e for e in outcome.ends if isinstance(e, Closed)] in ([], [Closed("requested")])
    else:
        assert escaped is None, repr(outcome.escaped)
        closed = [e for e in outcome.ends if isinstance(e, Closed)]
        assert [c.reason for c in closed] == [case.closed], outcome.ends
        assert outcome.events[-1] == closed[0]
        errors = [e.code for e in outcome.ends if isinstance(e, Error)]
        assert errors == ([case.error_code] if case.error_code else []), outcome.ends
    if case.body is rejoin_then_talk:
        kinds = [type(e) for e in outcome.events]
        assert kinds.count(SidebandLost) == kinds.count(SidebandRestored) == 1
    assert outcome.elapsed < case.bound
    assert outcome.tasks == []
    assert outcome.open_connections == 0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fault(case: Case, peers: PeerService, offer_sdp: str) -> None:
    check(case, await run_case(case, peers, offer_sdp))


@pytest.mark.long
@pytest.mark.parametrize("case", LONG_CASES, ids=[c.id for c in LONG_CASES])
async def test_fault_long(case: Case, peers: PeerService, offer_sdp: str) -> None:
    check(case, await run_case(case, peers, offer_sdp))


def test_the_matrix_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES + LONG_CASES}) == len(CASES) + len(LONG_CASES)
