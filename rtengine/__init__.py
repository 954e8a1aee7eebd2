"""rtengine: realtime conversations with the OpenAI Realtime API (and anything that speaks it) for trio.

Layers, bottom up: the sans-IO protocol core (:mod:`rtengine.protocol`, :mod:`rtengine.events`; pure, no
trio), thin adapters (httpx, trio-websocket, aiortc via trio-asyncio — the only asyncio in the package), and
the local realtime server (:mod:`rtengine.server`), which runs everything offline.
"""

from . import events as events
from . import protocol as protocol
from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import RealtimeClient as RealtimeClient
from ._conversation import Capacities as Capacities
from ._conversation import Conversation as Conversation
from ._conversation import open_conversation as open_conversation
from ._errors import CallError as CallError
from ._errors import CallRejected as CallRejected
from ._errors import ConfigError as ConfigError
from ._errors import ConnectFailed as ConnectFailed
from ._errors import ConnectionLost as ConnectionLost
from ._errors import ConversationNotRunning as ConversationNotRunning
from ._errors import ErrorClass as ErrorClass
from ._errors import InvalidAnswer as InvalidAnswer
from ._errors import InvalidCallId as InvalidCallId
from ._errors import InvalidLocation as InvalidLocation
from ._errors import InvalidSdp as InvalidSdp
from ._errors import LocalError as LocalError
from ._errors import RealtimeError as RealtimeError
from ._errors import RemoteError as RemoteError
from ._errors import ServerError as ServerError
from ._errors import TransportError as TransportError
from ._lifecycle import ConversationStats as ConversationStats
from ._manager import ConversationManager as ConversationManager
from ._manager import open_manager as open_manager
from ._session import DEFAULT_MODEL as DEFAULT_MODEL
from ._session import TURN_DETECTION_DISABLED as TURN_DETECTION_DISABLED
from ._session import AudioFormat as AudioFormat
from ._session import FunctionTool as FunctionTool
from ._session import SessionConfig as SessionConfig
from ._session import TurnDetection as TurnDetection

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "TURN_DETECTION_DISABLED",
    "AudioFormat",
    "CallError",
    "Capacities",
    "CallRejected",
    "ConfigError",
    "ConnectFailed",
    "ConnectionLost",
    "Conversation",
    "ConversationManager",
    "ConversationNotRunning",
    "ConversationStats",
    "ErrorClass",
    "FunctionTool",
    "InvalidAnswer",
    "InvalidCallId",
    "InvalidLocation",
    "InvalidSdp",
    "LocalError",
    "RealtimeClient",
    "RealtimeError",
    "RemoteError",
    "ServerError",
    "SessionConfig",
    "TransportError",
    "TurnDetection",
    "open_conversation",
    "open_manager",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "rtengine"
del _name, _obj
