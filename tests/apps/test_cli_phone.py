"""``rtengine phone`` and ``rtengine serve --sip-webhook URL --webhook-secret whsec_…`` as a user runs them."""

from __future__ import annotations

import os
import signal

import trio
from helpers import RTENGINE, start_serve
from sip_helpers import SECRET, receiving, wait_for_call

import rtengine
from rtengine.events import DtmfReceived, SessionUpdated


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


async def test_rtengine_phone_answers_and_transfers_the_simulated_call() -> None:
    with trio.fail_after(60):
        result = await trio.run_process([*RTENGINE, "phone"], capture_stdout=True, check=False, env=_env())
    out = result.stdout.decode()
    assert result.returncode == 0, out
    phases = [line.split("ms", 1)[1].strip() for line in out.splitlines() if " ms  " in line]
    expected = ["webhook_received", "accepted", "started", "sideband_joined", "session_updated", "first_response"]
    assert phases[:6] == expected, out
    assert phases[6:9] == ["dtmf 5", "refer tel:+14155550123", "closed call_ended"], out
    assert "ended: REFER tel:+14155550123" in out


async def test_serve_rings_the_webhook_and_the_call_is_answered_over_the_calls_api() -> None:
    with trio.fail_after(60):
        async with receiving() as hook, trio.open_nursery() as nursery:
            args = (
                "--api-key",
                "sk-sip",
                "--sip-webhook",
                hook.url,
                "--webhook-secret",
                SECRET,
                "--delta-interval",
                "0",
            )
            process, base_url = await start_serve(nursery, *args, env=_env())
            call_id = await wait_for_call(hook)
            async with rtengine.RealtimeClient(base_url, api_key="sk-sip") as client:
                session = rtengine.SessionConfig(instructions="Phone.")
                async with rtengine.open_conversation(client, session, accept_call_id=call_id) as conv:
                    keys = []
                    async for event in conv.events:
                        if isinstance(event, DtmfReceived):
                            keys.append(event.key)
                            if len(keys) == 2:
                                break
                        assert not isinstance(event, SessionUpdated) or event.session
            assert keys == ["5", "#"]
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0


async def test_serve_refuses_a_bad_webhook_secret_without_showing_it() -> None:
    with trio.fail_after(60):
        bad = await trio.run_process(
            [*RTENGINE, "serve", "--sip-webhook", "http://127.0.0.1:9/x", "--webhook-secret", "whsec_s3cr3t!!"],
            capture_stderr=True,
            check=False,
            env=_env(),
        )
        missing = await trio.run_process(
            [*RTENGINE, "serve", "--sip-webhook", "http://127.0.0.1:9/x"], capture_stderr=True, check=False, env=_env()
        )
    assert bad.returncode == 2
    assert b"webhook secret" in bad.stderr
    assert b"s3cr3t" not in bad.stderr
    assert missing.returncode == 2
    assert b"--sip-webhook needs --webhook-secret" in missing.stderr
