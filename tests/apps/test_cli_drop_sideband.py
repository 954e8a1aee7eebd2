"""``rtengine serve --drop-sideband`` (with ``--drop-sideband-after``, ``-times`` and ``-on``) as a user runs
it: a real subprocess whose calls lose their sidebands, and the engine re-joining them."""

import os
import signal

import trio
from helpers import RTENGINE, start_serve

import rtengine
from rtengine.events import Closed, Error, ItemAdded, ResponseDone, SessionUpdated, SidebandLost, SidebandRestored

KEY = "sk-cli-drop"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}


async def _until(conv: rtengine.Conversation, kind: type) -> list[rtengine.events.ConversationEvent]:
    seen = []
    async for event in conv.events:
        seen.append(event)
        if isinstance(event, kind):
            return seen
    raise AssertionError(f"the events ended before a {kind.__name__}: {seen}")


async def test_serve_drops_the_first_k_sidebands_of_a_call_after_n_events(offer_sdp: str) -> None:
    """``--drop-sideband 1011 --drop-sideband-after 2 --drop-sideband-times 2``: a sideband is closed with 1011 on
    its second event (the first is the ``session.updated``), twice; the third join stays."""
    args = ["--api-key", KEY, "--delta-interval", "0", "--drop-sideband", "1011"]
    args += ["--drop-sideband-after", "2", "--drop-sideband-times", "2"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(nursery, *args, env=_env())
            client = rtengine.RealtimeClient(base_url, api_key=KEY, backoff_base=0.01)
            async with (
                client,
                rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv,
            ):
                seen = await _until(conv, SessionUpdated)
                for label in ("one", "two"):
                    await conv.send_text(f"dropped after this: {label}")  # its item.added is the second event
                    seen += await _until(conv, SidebandLost)
                    seen += await _until(conv, SidebandRestored)
                await conv.send_text("the third sideband stays")
                seen += await _until(conv, ItemAdded)
                await conv.close()
                seen += [event async for event in conv.events]
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    lost = [e for e in seen if isinstance(e, SidebandLost)]
    assert [(e.code, e.reason) for e in lost] == [(1011, "rtengine local server: drop_sideband")] * 2
    assert len([e for e in seen if isinstance(e, SidebandRestored)]) == 2
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
    assert conv.stats.sideband_losses == 2


async def test_serve_documents_and_checks_the_drop_sideband_flags() -> None:
    with trio.fail_after(60):
        shown = await trio.run_process([*RTENGINE, "serve", "--help"], capture_stdout=True, env=_env())
        text = " ".join(shown.stdout.decode().split())
        flags = ("--drop-sideband {reset,eof,1011}", "--drop-sideband-after N", "--drop-sideband-times K")
        for flag in (*flags, "--drop-sideband-on TYPE"):
            assert flag in text
        assert "EOF without a close frame" in text
        bad_flags = (("--drop-sideband", "1006"), ("--drop-sideband-after", "0"), ("--drop-sideband-times", "x"))
        for bad in (*bad_flags, ("--drop-sideband-on", "response.create")):
            result = await trio.run_process(
                [*RTENGINE, "serve", "--port", "0", *bad], capture_stderr=True, check=False, env=_env()
            )
            assert result.returncode == 2
            assert bad[0].encode() in result.stderr
        typo = ["--drop-sideband", "reset", "--drop-sideband-on", "response.craete"]
        result = await trio.run_process(
            [*RTENGINE, "serve", "--port", "0", *typo], capture_stderr=True, check=False, env=_env()
        )
        assert result.returncode == 2
        assert b"--drop-sideband-on must be a client event type" in result.stderr  # the flag, not the field


async def test_serve_drops_a_sideband_on_a_client_event(offer_sdp: str) -> None:
    """``--drop-sideband reset --drop-sideband-on response.create``: the sideband is reset when the create arrives
    (it never reached the server); the engine joins again and sends it there: the response comes."""
    args = ["--api-key", KEY, "--delta-interval", "0", "--drop-sideband", "reset", "--drop-sideband-on"]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            process, base_url = await start_serve(nursery, *args, "response.create", env=_env())
            client = rtengine.RealtimeClient(base_url, api_key=KEY, backoff_base=0.01)
            async with (
                client,
                rtengine.open_conversation(client, rtengine.SessionConfig(), offer_sdp=offer_sdp) as conv,
            ):
                seen = await _until(conv, SessionUpdated)
                await conv.send_text("answer this")
                await conv.request_response()
                seen += await _until(conv, SidebandLost)
                seen += await _until(conv, ResponseDone)
                await conv.close()
                seen += [event async for event in conv.events]
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
    assert len([e for e in seen if isinstance(e, SidebandRestored)]) == 1
    assert len([e for e in seen if isinstance(e, ResponseDone)]) == 1
    assert not [e for e in seen if isinstance(e, Error)]
    assert seen[-1] == Closed("requested")
