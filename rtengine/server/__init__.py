"""The local realtime server: the OpenAI Realtime API (GA) on loopback, with latency and fault injection.

Use it from tests and apps::

    async with rtengine.server.open_local_server() as server:
        print(server.base_url)            # http://127.0.0.1:PORT/v1

or from the shell: ``rtengine serve --port 8011``. It is a separate room from the engine: it shares only
rtengine's sans-IO protocol core (payload shapes, parsing), so it tests the engine honestly.
"""

from ._app import LocalServer as LocalServer
from ._app import open_local_server as open_local_server
from ._options import INJECTIONS as INJECTIONS
from ._options import Faults as Faults
from ._options import ServerOptions as ServerOptions
from ._options import ToolScript as ToolScript
from ._options import check_injection as check_injection
from ._record import CallRecord as CallRecord
from ._record import ConnectionRecord as ConnectionRecord
from ._record import ServerRecord as ServerRecord
from ._sip import SipCall as SipCall
from ._sip import SipPhone as SipPhone
from ._sip_options import SipScript as SipScript

__all__ = [
    "check_injection",
    "INJECTIONS",
    "CallRecord",
    "ConnectionRecord",
    "Faults",
    "LocalServer",
    "ServerOptions",
    "ServerRecord",
    "SipCall",
    "SipPhone",
    "SipScript",
    "ToolScript",
    "open_local_server",
]
