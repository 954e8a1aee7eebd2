"""Helpers shared by the adapters: error descriptions that keep the reason."""

import ssl

from rtengine.protocol._util import describe_exception


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as raised:
        return raised


def test_an_empty_library_error_is_described_by_its_cause() -> None:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    described = describe_exception(_chained(ConnectionError(), cause))
    assert described == f"ConnectionError (SSLCertVerificationError: {cause})"
    assert "CERTIFICATE_VERIFY_FAILED" in described


def test_the_innermost_reason_is_used_and_repeats_are_not() -> None:
    middle = _chained(OSError("middle"), ValueError("root reason"))
    assert (
        describe_exception(_chained(RuntimeError("outer"), middle)) == "RuntimeError: outer (ValueError: root reason)"
    )
    assert describe_exception(_chained(RuntimeError("same"), ValueError("same"))) == "RuntimeError: same"
    assert describe_exception(ValueError("alone")) == "ValueError: alone"


def test_a_group_of_one_is_described_by_its_member_and_its_message_is_not_repeated() -> None:
    group = ExceptionGroup("all attempts to connect to h:1 failed", [ConnectionRefusedError(111, "Connection refused")])
    described = describe_exception(_chained(OSError("all attempts to connect to h:1 failed"), group))
    assert (
        described
        == "OSError: all attempts to connect to h:1 failed (ConnectionRefusedError: [Errno 111] Connection refused)"
    )
    assert described.count("all attempts") == 1
