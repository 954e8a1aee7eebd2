"""The engine room: trio only. A conversation as tasks, scopes and one outlet; the world through three seams.

Theory of operation::

    caller ── async with open_conversation(client, session, offer_sdp=…) as conv:
    ├─ inline, in the caller's task: POST /realtime/calls (call seam) ─► conv.answer_sdp, conv.call_id
    │     the Conversation is built while the request is in flight; websocket: connect + session.update instead
    └─ the block's nursery
       └─ runner (Conversation._run) ── runs one job in its own task (the inline one, else the last); others are tasks
          └─ root nursery ── its scope cancelled only as the last resort of an overrunning teardown
             ├─ owner watch, from the first time the alarm is set ── keeps the conversation's alarm (_alarm: a
             │     rotation, a cap warning — no task sleeping for them); cancelled with the owner's scope → the end
             ├─ work nursery ── its scope cancelled by every end, unconditionally (and by the owner's cancellation)
             │  ├─ sideband job: join (retries) ─► session.update ─► loop: reader (this task) + one writer task
             │  │     └─ lost abnormally while the call lives: re-join (bounded) ─► session.update ─► loop again
             │  ├─ websocket job with reconnect/rotation: the first session in this task, each next one a task of
             │  │  the work nursery
             │  │     └─ the next session opens beside it (rotation, started by the alarm) or after it (reconnect)
             │  │        ─► replay ─► loop
             │  └─ media job (rtengine as the WebRTC peer): answer ─► connected ─► audio both ways
             └─ afterwards, bounded: hang up the call; then Closed is delivered and the stream ends

An idle joined websocket conversation is two tasks — the runner (which reads), the writer — in four nurseries (the
block's, the root, the work nursery, the loop's), and the owner watch once the alarm is set (a websocket with
rotation: its rotation is armed once the session's cap is known): a task and its scopes are most of what an idle
conversation costs in memory, so nothing sleeps in a task of its own, and the writer waits for an input without a
cancel scope of its own.

Why each guarantee holds:

* **Answer first.** Nothing of the join precedes ``answer_sdp``: the runner is spawned after the answer.
* **Inputs buffer from the first moment** (:class:`~rtengine.engine._inputs.Inputs`, built while the POST is in
  flight) and go out after ``session.update``, FIFO; what is never sent is counted per kind.
* **One end.** ``Conversation._end`` claims the end synchronously, once, and in the same step refuses further
  ordinary events, delivers the ``Error`` (if any), closes the inputs and cancels the work scope. Whichever path
  claims first — ``close()``, the owner's cancellation, a job's failure — wins; the others do nothing (a job whose
  task is already cancelled when it fails was cancelled by the owner: its end is the owner's, with no ``Error``;
  a read resumed after the owner's ``cancel()`` is not delivered). After the
  claim the work scope is cancelled, so no connection can be opened, nothing written but the close, no event
  delivered but ``Closed``.
* **Prompt, bounded teardown.** The socket adapter has no background reader: leaving a socket's block runs the close
  handshake by itself (shielded, bounded by ``close_timeout``), so cancelling the work never costs the handshake.
  ``close()`` bounds the rest and, past the bound, cancels the root scope.
* **Errors are not swallowed, not leaked.** A ``RealtimeError`` in a job becomes one ``Error`` + ``Closed("error")``;
  any other exception also propagates out of the block as itself.
* **A call survives its sideband** (:mod:`~rtengine.engine._rejoin`): a sideband lost abnormally is joined again
  inside the same work scope, so every guarantee above holds across the gap; inputs keep buffering, nothing is
  sent twice, ``session.update`` is first on every socket.
* **A websocket conversation survives its sessions** (:mod:`~rtengine.engine._wsession`): a rotation before the
  cap or a reconnect after a drop opens a new session in the same work scope and replays the history into it
  (:mod:`~rtengine.engine._follow`); the same carry rules hold.
* **Nothing outlives the block**: every task is a descendant of the runner, in the owner's nursery.
"""

from ._conversation import Capacities as Capacities
from ._conversation import Conversation as Conversation
from ._manager import ConversationManager as ConversationManager
from ._manager import open_manager as open_manager
from ._media import Media as Media
from ._open import open_conversation as open_conversation
from ._open import start_conversation as start_conversation
from ._prewarm import PrewarmPool as PrewarmPool
from ._prewarm import open_prewarm_pool as open_prewarm_pool

__all__ = [
    "Capacities",
    "Conversation",
    "ConversationManager",
    "Media",
    "PrewarmPool",
    "open_conversation",
    "open_manager",
    "open_prewarm_pool",
    "start_conversation",
]
