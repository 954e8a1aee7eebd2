"""A webhook secret (``whsec_…``) never appears in a repr, an exception (its text, ``args`` or chain) or a log line
of :mod:`rtengine.webhooks`, of the local server's SIP options and phone, or of ``rtengine serve`` (issue #15,
finding 2: "the same for webhook secrets")."""

from __future__ import annotations

import base64
import logging

import pytest
import trio
from engine_helpers import serving
from helpers import exception_chain
from sip_helpers import SECRET, receiving

from rtengine import ConfigError, webhooks
from rtengine.adapters._peer import PeerService
from rtengine.apps._cli import main
from rtengine.server import ServerOptions, SipScript

#: Another endpoint's secret (the deliveries below are signed with ``SECRET``).
OTHER = "whsec_" + base64.b64encode(b"another-endpoint-secret-32-bytes").decode()
#: The base64 of each secret: the key a repr of the decoded bytes would show.
DECODED = [SECRET.removeprefix("whsec_"), OTHER.removeprefix("whsec_")]


def _leaks(text: str) -> list[str]:
    return [s for s in (SECRET, OTHER, *DECODED) if s in text]


def test_reprs_of_the_server_options_and_the_signer_hide_the_secret() -> None:
    options = ServerOptions(api_key="sk-test", sip_webhook="http://127.0.0.1:9/hook", webhook_secret=SECRET)
    assert _leaks(repr(options) + str(options) + repr(webhooks.WebhookSigner(SECRET)) + repr(SipScript())) == []


@pytest.mark.parametrize("secret", [SECRET + "!", "whsec_" + "é" + SECRET[6:], SECRET[:-2] + "*="])
def test_a_malformed_secret_is_refused_without_being_shown(secret: str) -> None:
    with pytest.raises(ConfigError) as refused:
        webhooks.WebhookSigner(secret)
    assert "whsec_" in str(refused.value)  # it says what a secret looks like
    assert _leaks(exception_chain(refused.value)) == []


async def test_a_delivery_checked_with_another_secret_fails_without_showing_either(
    peers: PeerService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    script = SipScript(calls=0, webhook_retries=0, ring_seconds=0.5)
    async with serving(peers, webhook_secret=SECRET, sip=script) as server, receiving(500) as hook:
        with trio.fail_after(10):
            sip = await server.sip.place_call(hook.url)
            seen = [repr(server), repr(server.sip), repr(sip)]
    delivery = hook.deliveries[0]
    with pytest.raises(webhooks.WebhookSignatureError) as refused:
        webhooks.verify(delivery.headers, delivery.body, OTHER)
    seen += [exception_chain(refused.value)]
    seen += [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert any("incoming SIP call" in s for s in seen)  # the phone logged its work
    assert _leaks("\n".join(seen)) == []


def test_serve_with_a_malformed_secret_exits_without_printing_it(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["serve", "--port", "0", "--sip-webhook", "http://127.0.0.1:9/h", "--webhook-secret", SECRET + "!"]
    assert main(argv) == 2
    out = capsys.readouterr()
    assert "whsec_" in out.err
    assert _leaks(out.out + out.err) == []
