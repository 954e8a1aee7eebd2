"""The layers, read off the folders: each sub-package of ``rtengine`` is a room, and a room may import only the
rooms below it (design/engine-shape.md). The modules at the top level are the public faces that wire the rooms
together. A new folder fails these tests until it is given its place here.
"""

from __future__ import annotations

import ast
import pathlib
import sys
from collections.abc import Iterator

import rtengine

PACKAGE = pathlib.Path(rtengine.__file__).parent
ROOMS = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))

#: Which rooms each room may import (the only hand-kept part: the picture of design/engine-shape.md).
#: ``face`` is the top level (``rtengine``, ``rtengine.events``, ``rtengine.webrtc``, …).
MAY_IMPORT: dict[str, set[str]] = {
    "protocol": set(),
    "engine": {"protocol"},
    "adapters": {"protocol"},
    "server": {"protocol", "adapters"},
    "apps": {"face", "protocol", "engine", "adapters", "server"},
    # the pytest plugin: the faces and the local server, like an app
    "testing": {"face", "server"},
}
#: Third-party libraries each room may import (the standard library is open to all but the asyncio rule).
LIBRARIES: dict[str, set[str]] = {
    "protocol": set(),
    "engine": {"trio", "opentelemetry"},  # opentelemetry: only in engine._otel, only with the otel extra
    "adapters": {
        "trio",
        "httpx",
        "trio_websocket",
        "trio_asyncio",
        "aiortc",
        "aioice",
        "av",
        "h11",
        "wsproto",
        "standardwebhooks",
    },
    "server": {"trio", "h11", "wsproto"},
    # the web app is an ASGI app (Starlette) served by hypercorn: the example of embedding rtengine in one
    "apps": {"trio", "rich", "starlette", "hypercorn"},
    # _rtengine_pytest: the plugin's entry module beside the package (light at pytest start-up), which it re-exports
    "testing": {"trio", "pytest", "pytest_trio", "_rtengine_pytest"},
}
STDLIB = sys.stdlib_module_names
#: The aiortc bridge: the only module where asyncio may appear.
BRIDGE = {"rtengine.adapters._peer"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "face"


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved, ``TYPE_CHECKING`` included)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            if node.level and not node.module:  # ``from . import events``
                names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _modules() -> list[pathlib.Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_folder_is_a_known_room() -> None:
    assert set(ROOMS) == set(MAY_IMPORT) == set(LIBRARIES)


def _room_imports() -> Iterator[tuple[str, str, str]]:
    """(module, its room, a name it imports) for every module of a room (the faces are left out)."""
    for path in _modules():
        module = _module_name(path)
        room = _room(module)
        if room != "face":
            for name in _imports(path):
                yield module, room, name


def test_rooms_import_only_the_rooms_below_them() -> None:
    offenders = []
    for module, room, name in _room_imports():
        if name.split(".")[0] != "rtengine":
            continue
        target = "face" if name == "rtengine" else _room(name)
        if target != room and target not in MAY_IMPORT[room]:
            offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_rooms_import_only_their_libraries() -> None:
    offenders = []
    for module, room, name in _room_imports():
        top = name.split(".")[0]
        if top in ("rtengine", "__future__") or (top in STDLIB and top != "asyncio"):
            continue
        if top not in LIBRARIES[room] and not (top == "asyncio" and module in BRIDGE):
            offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_apps_reach_other_rooms_through_their_faces() -> None:
    """The apps use faces only (``rtengine``, ``rtengine.engine``, ``rtengine.server``, ``rtengine.adapters`` …)."""
    offenders = []
    for module, room, name in _room_imports():
        parts = name.split(".")
        if room != "apps" or parts[0] != "rtengine" or len(parts) < 3 or parts[1] == "apps":
            continue
        if parts[2].startswith("_"):
            offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_asyncio_lives_in_the_aiortc_bridge_only() -> None:
    users = [_module_name(p) for p in _modules() if any(n.split(".")[0] == "asyncio" for n in _imports(p))]
    assert set(users) <= BRIDGE


def test_the_public_events_do_not_import_the_engine() -> None:
    imported = _imports(PACKAGE / "events.py")
    assert {name for name in imported if name.startswith("rtengine.") and _room(name) != "protocol"} == set()
