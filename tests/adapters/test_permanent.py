"""Connection failures another attempt cannot fix are raised at once; transient ones are retried (call creation
over ``httpx.MockTransport``, on the autojump clock)."""

import socket
import ssl

import httpx
import pytest
import trio.testing

from rtengine import ConnectFailed
from rtengine.adapters._http import HttpCalls
from rtengine.adapters._permanent import is_permanent
from rtengine.protocol import CallBody

AUTH = {"authorization": "Bearer sk-permanent-test"}
BODY = CallBody("application/sdp", b"v=0\r\n")


def _raised_from(cause: BaseException) -> httpx.ConnectError:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise httpx.ConnectError("") from exc
    except httpx.ConnectError as error:
        return error


@pytest.mark.parametrize(
    ("cause", "permanent"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), True),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), False),
        (ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version"), True),
        (ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), True),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), False),
        (OverflowError("getsockaddrarg: port must be 0-65535."), True),
        (ExceptionGroup("all attempts failed", [ConnectionRefusedError(111, "Connection refused")]), False),
        (TimeoutError(), False),
    ],
)
def test_is_permanent(cause: BaseException, permanent: bool) -> None:
    assert is_permanent(_raised_from(cause)) is permanent


@pytest.mark.parametrize(
    ("cause", "attempts"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), 1),
        (ConnectionRefusedError(111, "Connection refused"), 4),
    ],
)
async def test_call_creation_retries_only_transient_failures(
    autojump_clock: trio.testing.MockClock, cause: BaseException, attempts: int
) -> None:
    seen: list[httpx.Request] = []

    async def fail(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise _raised_from(cause)

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as http:
        calls = HttpCalls(lambda: http, "http://test/v1/realtime/calls", retries=3)
        with pytest.raises(ConnectFailed) as raised:
            await calls.create(BODY, AUTH)
    assert len(seen) == attempts
    assert raised.value.retryable is (attempts > 1)
    assert str(cause.args[-1]) in str(raised.value)
