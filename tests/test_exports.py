"""The public surface: complete re-exports, names that read as rtengine's, one exception root, no asyncio leaks."""

import ast
import pathlib

import rtengine
import rtengine.events
import rtengine.protocol
import rtengine.server

PACKAGE = pathlib.Path(rtengine.__file__).parent


def test_every_public_name_is_exported_and_importable() -> None:
    for module in (rtengine, rtengine.events, rtengine.protocol, rtengine.server):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is listed but missing"
    assert sorted(rtengine.__all__) == sorted(set(rtengine.__all__))


def test_public_classes_present_themselves_as_rtengine() -> None:
    for name in rtengine.__all__:
        value = getattr(rtengine, name)
        if isinstance(value, type):
            assert value.__module__ == "rtengine", name


def test_every_exception_derives_from_realtime_error() -> None:
    for name in rtengine.__all__:
        value = getattr(rtengine, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, rtengine.RealtimeError), name


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


#: The aiortc bridge: the peer connections and their service, and the outbound PCM track.
BRIDGE = frozenset({"adapters/_peer.py", "adapters/_pcm_track.py"})


def test_asyncio_and_aiortc_live_in_the_bridge_modules_only() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if _imports(path) & {"asyncio", "aiortc", "aioice", "trio_asyncio"}
        and path.relative_to(PACKAGE).as_posix() not in BRIDGE
    ]
    assert offenders == []


def test_the_protocol_core_is_pure() -> None:
    pure = [
        "_backoff",
        "_calls",
        "_classify",
        "_errors",
        "_events",
        "_headers",
        "_parse",
        "_payloads",
        "_session",
        "_urls",
        "_audio",
        "_reattach",
    ]
    for module in pure:
        imported = _imports(PACKAGE / "protocol" / f"{module}.py")
        assert not imported & {"trio", "httpx", "asyncio", "aiortc", "h11", "wsproto"}, module
