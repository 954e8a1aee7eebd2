"""The typed events a realtime conversation produces (re-exported from the parser's ``_events``).

Match on the classes (``case AudioOut(): …``); never subclass them.
"""

from ._conversation import ConversationEvent as ConversationEvent
from ._events import AudioOut as AudioOut
from ._events import InputTranscriptDelta as InputTranscriptDelta
from ._events import InputTranscriptDone as InputTranscriptDone
from ._events import ItemAdded as ItemAdded
from ._events import ItemDone as ItemDone
from ._events import OutputAudioCleared as OutputAudioCleared
from ._events import OutputAudioStarted as OutputAudioStarted
from ._events import OutputAudioStopped as OutputAudioStopped
from ._events import OutputTranscriptDelta as OutputTranscriptDelta
from ._events import OutputTranscriptDone as OutputTranscriptDone
from ._events import ProtocolWarning as ProtocolWarning
from ._events import RateLimit as RateLimit
from ._events import RateLimits as RateLimits
from ._events import ResponseCancelled as ResponseCancelled
from ._events import ResponseCreated as ResponseCreated
from ._events import ResponseDone as ResponseDone
from ._events import ServerErrorEvent as ServerErrorEvent
from ._events import ServerEvent as ServerEvent
from ._events import SessionCreated as SessionCreated
from ._events import SessionUpdated as SessionUpdated
from ._events import SpeechStarted as SpeechStarted
from ._events import SpeechStopped as SpeechStopped
from ._events import ToolCall as ToolCall
from ._events import UnknownEvent as UnknownEvent
from ._events import WarningKind as WarningKind
from ._lifecycle import Closed as Closed
from ._lifecycle import Error as Error
from ._lifecycle import Started as Started

__all__ = [
    "AudioOut",
    "Closed",
    "ConversationEvent",
    "Error",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "ItemAdded",
    "ItemDone",
    "OutputAudioCleared",
    "OutputAudioStarted",
    "OutputAudioStopped",
    "OutputTranscriptDelta",
    "OutputTranscriptDone",
    "ProtocolWarning",
    "RateLimit",
    "RateLimits",
    "ResponseCancelled",
    "ResponseCreated",
    "ResponseDone",
    "ServerErrorEvent",
    "ServerEvent",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "Started",
    "ToolCall",
    "UnknownEvent",
    "WarningKind",
]
