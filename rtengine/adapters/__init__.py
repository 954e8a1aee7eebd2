"""The adapters room: thin layers over third-party libraries, each translating its library's exceptions into
rtengine's at one place — ``_http`` (httpx: the call seam), ``_ws`` (wsproto over trio streams: the socket seam),
``_peer`` (aiortc through trio-asyncio: the only asyncio in the package) with ``_pcm_track`` (its audio frames),
and ``_serving`` (h11 and wsproto serving plumbing for the local server and the phone demo's webhook receiver).

This face exports only the serving plumbing the apps use; the engine reaches the other adapters through the seams
``RealtimeClient`` builds. (The web app is an ASGI app on Starlette and hypercorn, not on this plumbing.)
"""

from ._serving import HttpRequest as HttpRequest
from ._serving import Limits as Limits
from ._serving import serve_connection as serve_connection

__all__ = ["HttpRequest", "Limits", "serve_connection"]
