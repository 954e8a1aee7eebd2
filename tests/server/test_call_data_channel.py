"""A call's ``oai-events`` data channel under a burst of client events, against the local server over real WebRTC.

History seeding sends a thousand ``conversation.item.create`` at once; the API handles them all. The local server's
data channel reader waits for the conversation's inbox (backpressure) instead of refusing what does not fit.
"""

import json

import trio
from engine_helpers import data_channel_call

from rtengine.protocol import user_text


async def test_a_burst_of_items_on_the_data_channel_is_all_added_in_order() -> None:
    burst = 1000
    with trio.fail_after(90):
        async with data_channel_call() as (server, conv, peer):
            for n in range(burst):
                assert peer.send_data(json.dumps(user_text(f"history {n}")))
            record = server.record.calls[-1]

            def all_done() -> bool:
                return [f["type"] for f in record.data_frames_out].count("conversation.item.done") >= burst

            async def read_events() -> None:  # the app reads its events (the sideband sees the burst too)
                async for _ in conv.events:
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_events)
                # A sanity bound, not the behaviour under test: aiortc's SCTP paces a burst (≈12 s for 1000
                # items on a quiet machine, 20-35 s on a loaded one), so a tight bound only measures the load.
                with trio.move_on_after(60):
                    await server.record.wait_until(all_done)
                nursery.cancel_scope.cancel()
            sent = [f for f in record.data_frames_out if isinstance(f, dict)]
    assert len(record.data_frames_in) == burst
    assert record.data_frames_refused == 0
    assert "error" not in [f["type"] for f in sent]
    done = [f["item"]["content"][0]["text"] for f in sent if f["type"] == "conversation.item.done"]
    assert done == [f"history {n}" for n in range(burst)]  # all of them, in the order sent
