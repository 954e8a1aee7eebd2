"""Sphinx configuration for rtengine's documentation (built by ``.ci/docs`` with warnings as errors)."""

from __future__ import annotations

import importlib.metadata
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / "_ext"))

project = "rtengine"
author = "rtengine authors"
copyright = "2026, rtengine authors"
release = importlib.metadata.version("rtengine")
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode", "cli_help"]

# The docstrings are plain reStructuredText (``code``, :class:`…` roles and ``#:`` attribute comments).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
add_module_names = False
python_use_unqualified_type_names = True

# Every cross-reference must resolve, except to libraries whose inventories are not fetched here (the build runs
# offline: no intersphinx).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(trio|httpx|ssl|asyncio|aiortc|av|contextlib|collections|typing|types|enum|wsproto|h11)(\..*)?"),
    (r"py:.*", r"(pytest|_pytest|opentelemetry)(\..*)?"),
    (r"py:.*", r"(AsyncIterator|AsyncIterable|Iterator|Iterable|Callable|Mapping|Sequence|Awaitable|Literal)"),
    (r"py:.*", r"(pathlib\.)?(Path|PathLike|datetime|timedelta|ABC|Exception|BaseException|Enum|IntEnum|StrEnum)"),
    # internal types that appear in public signatures (the seams, records' containers): not part of the API
    (r"py:.*", r"rtengine(\.[a-z]+)*\._[a-z_]+(\..*)?"),
    (
        r"py:class",
        r"(Endpoint|SidebandMode|PeerFactory|PeerService|PeerLike|TrackLike|Warmable|SipAction|Reply|HttpRequest"
        r"|CallManager|_ConversationBlock)",
    ),
]

html_theme = "furo"
html_title = "rtengine"
exclude_patterns = ["_build"]
