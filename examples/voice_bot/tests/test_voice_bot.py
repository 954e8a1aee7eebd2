"""voice_bot's own tests: offline, against rtengine's local realtime server, through rtengine's pytest plugin only
(the fixtures ``realtime_server``, ``realtime_client``, ``realtime_env`` and the ``realtime_server`` marker)."""

import json

import pytest
import trio
import voice_bot

import rtengine
from rtengine.server import ToolScript
from rtengine.testing import RealtimeTestServer


async def test_the_bot_returns_the_spoken_answer(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        answer = await voice_bot.ask(realtime_client, "Hello, bot")
    assert answer.transcript == "You said: Hello, bot"  # the local server's model echoes
    assert answer.tool_calls == []
    [asked] = realtime_server.client_events("conversation.item.create")
    assert asked["item"]["content"][0]["text"] == "Hello, bot"


@pytest.mark.realtime_server(tool_call=ToolScript("weather", '{"city": "Paris"}'))
async def test_the_bot_answers_a_tool_call_with_its_tool(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        answer = await voice_bot.ask(realtime_client, "Weather in Paris?", voice_bot.TOOLS)
    assert answer.tool_calls == [("weather", {"city": "Paris"})]
    [output] = [e["item"] for e in realtime_server.client_events("conversation.item.create")[1:]]
    assert output["type"] == "function_call_output"
    assert json.loads(output["output"]) == {"city": "Paris", "forecast": "sunny", "celsius": 21}
    assert "sunny" in answer.transcript  # the model's answer uses the tool's output


@pytest.mark.realtime_server(tool_call=ToolScript("stock_price", '{"ticker": "ACME"}'))
async def test_an_unknown_tool_gets_an_error_output_and_the_bot_still_answers(
    realtime_client: rtengine.RealtimeClient, realtime_server: RealtimeTestServer
) -> None:
    with trio.fail_after(15):
        answer = await voice_bot.ask(realtime_client, "ACME?", voice_bot.TOOLS)
    [output] = realtime_server.client_events("conversation.item.create")[1:]
    assert json.loads(output["item"]["output"]) == {"error": "no tool named stock_price"}
    assert answer.transcript


@pytest.mark.realtime_server(close_after_events=2)
async def test_a_conversation_cut_before_the_answer_raises(realtime_client: rtengine.RealtimeClient) -> None:
    with trio.fail_after(15), pytest.raises(voice_bot.BotError, match="ended before the answer"):
        await voice_bot.ask(realtime_client, "Are you there?")


@pytest.mark.realtime_server(inject=("error:insufficient_quota",))
async def test_a_fatal_server_error_raises(realtime_client: rtengine.RealtimeClient) -> None:
    """The server answers the session with the API's quota error: the bot says so instead of waiting forever."""
    with trio.fail_after(15), pytest.raises(voice_bot.BotError, match="insufficient_quota"):
        await voice_bot.ask(realtime_client, "Still there?")


async def test_the_command_line_reads_the_environment(realtime_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    with trio.fail_after(15):
        status = await voice_bot.run(["What time is it?"])
    assert status == 0
    assert capsys.readouterr().out == "You said: What time is it?\n"
