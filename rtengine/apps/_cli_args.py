"""The ``rtengine`` command line: the parser of every subcommand, and the checks of a conversation's inputs made
before any network work (a usage error is exit status 2 with one line on stderr)."""

from __future__ import annotations

import argparse
import math
import os
from urllib.parse import urlsplit

from .. import __version__
from ._cli_serve_args import add_server_arguments

__all__ = [
    "MAX_SECONDS",
    "MAX_SIDEBAND_DELAY",
    "UsageError",
    "bounded_seconds",
    "check_base_url",
    "check_wav_out",
    "parser",
    "verbosity",
]

#: The longest ``--seconds`` of source audio (and ``--timeout``): one hour, the API's session cap.
MAX_SECONDS = 3600.0
#: The longest ``--sideband-delay`` the embedded server may wait before accepting the join.
MAX_SIDEBAND_DELAY = 60.0


class UsageError(Exception):
    """A command line that cannot work (exit status 2, its message on stderr)."""


def bounded_seconds(low: float, high: float, *, low_inclusive: bool = False) -> type[float]:
    """An argparse ``type``: a finite number of seconds within ``(low, high]`` (``[low, high]`` when
    ``low_inclusive``); anything else (``inf``, ``nan``, out of bounds) is a usage error (exit status 2)."""

    def seconds(value: str) -> float:
        try:
            number = float(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from exc
        above = number >= low if low_inclusive else number > low
        if not (math.isfinite(number) and above and number <= high):
            bounds = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be a number of seconds in {bounds}, got {value!r}")
        return number

    seconds.__name__ = "seconds"  # argparse names the type in its messages
    return seconds  # type: ignore[return-value]


def _verbose(parser: argparse.ArgumentParser, dest: str, default: object) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        dest=dest,
        action="count",
        default=default,
        help="-v: rtengine's phases and decisions; -vv: rtengine's debug; -vvv: third-party libraries too (stderr)",
    )


def verbosity(args: argparse.Namespace) -> int:
    """The count of ``-v`` given before and after the subcommand."""
    return int(args.verbose_main) + int(getattr(args, "verbose_sub", 0))


def parser() -> argparse.ArgumentParser:
    """The ``rtengine`` parser: ``serve``, ``demo``, ``web``, ``phone``, ``call``."""
    main = argparse.ArgumentParser(prog="rtengine", description="Realtime conversations for trio.")
    main.add_argument("--version", action="version", version=f"rtengine {__version__}")
    _verbose(main, "verbose_main", 0)
    commands = main.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        _verbose(sub, "verbose_sub", 0)
        return sub

    add_server_arguments(command("serve", "run the local realtime server until Ctrl-C"))
    demo = command("demo", "one conversation against the embedded local server (offline)")
    _add_conversation_arguments(demo)
    demo.add_argument(
        "--sideband-delay",
        type=bounded_seconds(0.0, MAX_SIDEBAND_DELAY, low_inclusive=True),
        default=0.0,
        help=f"seconds the local server delays the join, 0 to {MAX_SIDEBAND_DELAY:g} (default: 0)",
    )
    demo.add_argument(
        "--session-cap",
        type=float,
        help="seconds: the local server's session cap (the API's is 3600); webrtc calls are re-dialed before it",
    )
    web = command("web", "a web page holding the call in the browser, with server-side controls")
    from ._web_cli import add_web_arguments  # here: _web_cli imports the demo, which imports this module

    add_web_arguments(web)
    phone = command("phone", "a phone agent answering a simulated SIP call (embedded local server)")
    phone.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    call = command("call", "one conversation against any server (the real API or rtengine serve)")
    call.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or rtengine serve's URL")
    call.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_API_KEY"),
        help="the API key (default: $OPENAI_API_KEY; none: no Authorization header, for a server that needs none)",
    )
    call.add_argument("--model", help="the realtime model (default: gpt-realtime)")
    call.add_argument(
        "--loopback", action="store_true", help="webrtc: pin ICE to 127.0.0.1 (for rtengine serve --loopback)"
    )
    call.add_argument("--ca-file", help="trust this CA (PEM) for the server's TLS, instead of the system's CAs")
    _add_conversation_arguments(call)
    return main


def _add_conversation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("webrtc", "websocket"), default="webrtc", help="default: webrtc")
    parser.add_argument("--text", default="Hello from rtengine!", help="the user text to send")
    parser.add_argument(
        "--timeout",
        type=bounded_seconds(0.0, MAX_SECONDS),
        default=30.0,
        help=f"give up after this many seconds, > 0 and at most {MAX_SECONDS:g} (default: 30)",
    )
    parser.add_argument(
        "--seconds",
        type=bounded_seconds(0.0, MAX_SECONDS),
        default=3.0,
        help=f"webrtc: seconds of 440 Hz tone to send, > 0 and at most {MAX_SECONDS:g} (default: 3)",
    )
    parser.add_argument(
        "--wav-in",
        metavar="FILE",
        help="webrtc: send this audio file (any format PyAV reads: WAV, MP3, FLAC, …) instead of the tone",
    )
    parser.add_argument(
        "--wav-out", metavar="FILE", default="rtengine-demo.wav", help="write the received audio here (PCM16 WAV)"
    )
    parser.add_argument(
        "--speak",
        action="store_true",
        help="websocket: speak the turn (a synthetic utterance, server VAD answers) instead of sending --text",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document (the run's report) and nothing else"
    )


def check_base_url(url: str) -> None:
    """Raise :class:`UsageError` unless ``url`` is an http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError outside 0..65535
    except ValueError as exc:
        raise UsageError(f"--base-url {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--base-url {url!r}: expected http:// or https:// and a host")
    if port == 0:
        raise UsageError(f"--base-url {url!r}: port 0 is not a server's port")


def check_wav_out(path: str) -> None:
    """Raise :class:`UsageError` unless ``path`` can be created or written: it is opened for appending (an existing
    file is not truncated) and, if this check created it, removed again — the WAV is written from the first audio
    frame received, so a run that receives no audio leaves no file behind."""
    if os.path.isdir(path):
        raise UsageError(f"--wav-out {path}: is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--wav-out {path}: no such directory {folder}")
    existed = os.path.lexists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UsageError(f"--wav-out {path}: cannot be written ({exc.strerror or exc})") from exc
    if not existed:
        os.remove(path)
