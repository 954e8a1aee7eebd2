"""The typed events a realtime conversation produces (re-exported from the parser's ``_events``).

Match on the classes (``case AudioOut(): …``); never subclass them.
"""

from .protocol._continuity import ConnectionDropped as ConnectionDropped
from .protocol._continuity import SessionRestored as SessionRestored
from .protocol._events import AudioOut as AudioOut
from .protocol._events import InputTranscriptDelta as InputTranscriptDelta
from .protocol._events import InputTranscriptDone as InputTranscriptDone
from .protocol._events import ItemAdded as ItemAdded
from .protocol._events import ItemDone as ItemDone
from .protocol._events import OutputAudioCleared as OutputAudioCleared
from .protocol._events import OutputAudioStarted as OutputAudioStarted
from .protocol._events import OutputAudioStopped as OutputAudioStopped
from .protocol._events import OutputTranscriptDelta as OutputTranscriptDelta
from .protocol._events import OutputTranscriptDone as OutputTranscriptDone
from .protocol._events import ProtocolWarning as ProtocolWarning
from .protocol._events import RateLimit as RateLimit
from .protocol._events import RateLimits as RateLimits
from .protocol._events import ResponseCancelled as ResponseCancelled
from .protocol._events import ResponseCreated as ResponseCreated
from .protocol._events import ResponseDone as ResponseDone
from .protocol._events import ServerErrorEvent as ServerErrorEvent
from .protocol._events import ServerEvent as ServerEvent
from .protocol._events import SessionCreated as SessionCreated
from .protocol._events import SessionUpdated as SessionUpdated
from .protocol._events import SpeechStarted as SpeechStarted
from .protocol._events import SpeechStopped as SpeechStopped
from .protocol._events import ToolCall as ToolCall
from .protocol._events import UnknownEvent as UnknownEvent
from .protocol._events import WarningKind as WarningKind
from .protocol._lifecycle import Closed as Closed
from .protocol._lifecycle import ConversationEvent as ConversationEvent
from .protocol._lifecycle import Error as Error
from .protocol._lifecycle import SessionRotated as SessionRotated
from .protocol._lifecycle import SidebandLost as SidebandLost
from .protocol._lifecycle import SidebandRestored as SidebandRestored
from .protocol._lifecycle import Started as Started
from .protocol._more_events import ConversationCreated as ConversationCreated
from .protocol._more_events import DtmfReceived as DtmfReceived
from .protocol._more_events import McpArgumentsDelta as McpArgumentsDelta
from .protocol._more_events import McpArgumentsDone as McpArgumentsDone
from .protocol._more_events import McpCall as McpCall
from .protocol._more_events import McpListTools as McpListTools
from .protocol._more_events import McpStatus as McpStatus

__all__ = [
    "AudioOut",
    "Closed",
    "ConnectionDropped",
    "ConversationCreated",
    "ConversationEvent",
    "DtmfReceived",
    "Error",
    "InputTranscriptDelta",
    "InputTranscriptDone",
    "ItemAdded",
    "ItemDone",
    "McpArgumentsDelta",
    "McpArgumentsDone",
    "McpCall",
    "McpListTools",
    "McpStatus",
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
    "SessionRestored",
    "SessionRotated",
    "SessionUpdated",
    "SidebandLost",
    "SidebandRestored",
    "SpeechStarted",
    "SpeechStopped",
    "Started",
    "ToolCall",
    "UnknownEvent",
    "WarningKind",
]
