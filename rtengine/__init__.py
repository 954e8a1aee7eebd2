"""rtengine: realtime conversations with the OpenAI Realtime API (and anything that speaks it) for trio.

Layers, bottom up: the sans-IO protocol core (:mod:`rtengine.protocol`, :mod:`rtengine.events`; pure, no
trio), thin adapters (httpx, a wsproto websocket client, aiortc via trio-asyncio — the only asyncio in the package), and
the local realtime server (:mod:`rtengine.server`), which runs everything offline.
"""

# First: when this process is the rtengine command, a Ctrl-C while it imports exits 130 quietly.
from . import _command as _command
from . import events as events
from . import protocol as protocol
from . import webhooks as webhooks
from ._client import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._client import RealtimeClient as RealtimeClient
from .engine._conversation import Capacities as Capacities
from .engine._conversation import Conversation as Conversation
from .engine._manager import ConversationManager as ConversationManager
from .engine._manager import open_manager as open_manager
from .engine._open import open_conversation as open_conversation
from .engine._open import start_conversation as start_conversation
from .protocol._errors import CallError as CallError
from .protocol._errors import CallNotFound as CallNotFound
from .protocol._errors import CallRejected as CallRejected
from .protocol._errors import ConfigError as ConfigError
from .protocol._errors import ConnectFailed as ConnectFailed
from .protocol._errors import ConnectionLost as ConnectionLost
from .protocol._errors import ConversationNotRunning as ConversationNotRunning
from .protocol._errors import ErrorClass as ErrorClass
from .protocol._errors import InvalidAnswer as InvalidAnswer
from .protocol._errors import InvalidCallId as InvalidCallId
from .protocol._errors import InvalidLocation as InvalidLocation
from .protocol._errors import InvalidSdp as InvalidSdp
from .protocol._errors import LocalError as LocalError
from .protocol._errors import RealtimeError as RealtimeError
from .protocol._errors import RemoteError as RemoteError
from .protocol._errors import ServerError as ServerError
from .protocol._errors import TransportError as TransportError
from .protocol._lifecycle import ConversationStats as ConversationStats
from .protocol._session import DEFAULT_MODEL as DEFAULT_MODEL
from .protocol._session import TURN_DETECTION_DISABLED as TURN_DETECTION_DISABLED
from .protocol._session import AudioFormat as AudioFormat
from .protocol._session import FunctionTool as FunctionTool
from .protocol._session import SessionConfig as SessionConfig
from .protocol._session import TurnDetection as TurnDetection

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "TURN_DETECTION_DISABLED",
    "AudioFormat",
    "CallError",
    "Capacities",
    "CallNotFound",
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
    "start_conversation",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "rtengine"
del _name, _obj
