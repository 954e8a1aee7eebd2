"""The ``rtengine`` command: ``serve`` (the local realtime server), ``demo``, ``web``, ``phone`` and ``call``."""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import os
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVarTuple

import trio

from ..protocol import redact_url
from ..server import INJECTIONS, Faults, ServerOptions, SipScript, ToolScript, check_injection, open_local_server
from ..webhooks import WebhookSigner
from ._demo import DemoOptions
from ._demo import main as demo_main
from ._phone import run_phone_demo
from ._web_cli import add_web_arguments, web_main

Ts = TypeVarTuple("Ts")

__all__ = ["main"]


def _injection(value: str) -> str:
    try:
        return check_injection(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from exc
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {value!r}")
    return seconds


def _positive_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from exc
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value!r}")
    return count


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8011, help="port to bind, 0 for any free port (default: 8011)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RTENGINE_SERVER_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $RTENGINE_SERVER_API_KEY, else no auth)",
    )
    parser.add_argument("--delta-interval", type=float, default=0.02, help="seconds between response deltas")
    parser.add_argument("--reply-text", help="the assistant's reply (default: echo the last user text)")
    parser.add_argument(
        "--tool-call", metavar="NAME[:ARGS_JSON]", help="make the first response call this function and wait"
    )
    faults = parser.add_argument_group("latency and fault injection")
    faults.add_argument("--call-delay", type=float, default=0.0, help="seconds before answering a call")
    faults.add_argument("--call-status", type=int, help="answer every call creation with this HTTP status")
    faults.add_argument("--sideband-accept-delay", type=float, default=0.0, help="seconds before accepting a sideband")
    faults.add_argument("--websocket-accept-delay", type=float, default=0.0, help="seconds before accepting ?model=")
    faults.add_argument("--refuse-sideband-joins", type=int, default=0, metavar="N", help="reject the first N with 503")
    faults.add_argument("--websocket-status", type=int, help="reject every websocket handshake with this status")
    faults.add_argument("--close-after-events", type=int, metavar="N", help="end each connection after N events")
    faults.add_argument(
        "--close-mode", choices=("clean", "abrupt"), default="clean", help="how --close-after-events ends it"
    )
    faults.add_argument("--ignore-client-close", action="store_true", help="never answer a client's CLOSE frame")
    faults.add_argument(
        "--inject",
        action="append",
        default=[],
        type=_injection,
        metavar="KIND",
        help=f"send after the first session.updated (repeatable): {', '.join(INJECTIONS)}",
    )
    faults.add_argument("--oversized-bytes", type=int, default=2 * 1024 * 1024, help="size of the oversized frame")
    faults.add_argument("--retry-after", type=float, help="Retry-After seconds on injected call rejections")
    faults.add_argument("--media-unreachable", action="store_true", help="answer calls but never complete ICE")
    faults.add_argument(
        "--drop-sideband",
        choices=("reset", "eof", "1011"),
        help="lose a call's sideband abnormally while the call lives on (a client may join the same call_id again): "
        "reset (TCP reset), eof (EOF without a close frame) or 1011 (CLOSE 1011, server error)",
    )
    faults.add_argument(
        "--drop-sideband-after",
        type=_positive_count,
        default=1,
        metavar="N",
        help="with --drop-sideband: drop once N server events were sent on that sideband (default: 1)",
    )
    faults.add_argument(
        "--drop-sideband-times",
        type=_positive_count,
        default=1,
        metavar="K",
        help="with --drop-sideband: drop the first K sidebands of each call; later joins stay (default: 1)",
    )
    parser.add_argument(
        "--session-max-seconds",
        type=_positive_seconds,
        default=3600.0,
        metavar="S",
        help="session cap: close each session's sockets with 1001 and end its call after S seconds (default: 3600)",
    )
    parser.add_argument(
        "--call-connect-seconds",
        type=_positive_seconds,
        default=30.0,
        metavar="S",
        help="end a call whose media peer has not connected within S seconds (default: 30)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds a client has for a request head (and an idle keep-alive for its next one); 408 (default: 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="S",
        help="seconds a client has for a whole request body, else 408 (default: 30)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive_count,
        default=1000,
        metavar="N",
        help="TCP connections served at once; one more is answered 503 with Retry-After (default: 1000)",
    )
    parser.add_argument(
        "--unused-call-seconds",
        type=_positive_seconds,
        default=120.0,
        metavar="S",
        help="end a call no sideband joined and whose data channel stayed silent after S seconds (default: 120)",
    )
    parser.add_argument(
        "--record-limit",
        type=_positive_count,
        default=100,
        metavar="N",
        help="the server's record keeps the N most recent calls and connections (default: 100)",
    )
    parser.add_argument("--echo", action="store_true", help="calls play back the audio they receive")
    parser.add_argument("--loopback", action="store_true", help="pin ICE candidates to 127.0.0.1 (one machine)")
    parser.add_argument("--certfile", help="serve HTTPS and WSS with this certificate chain (PEM)")
    parser.add_argument("--keyfile", help="the private key of --certfile (PEM; default: inside --certfile)")
    sip = parser.add_argument_group("simulated phone (incoming SIP calls)")
    sip.add_argument(
        "--sip-webhook",
        metavar="URL",
        help="ring this webhook URL with realtime.call.incoming; the first call waits (up to 120 s) until the URL "
        "accepts connections, so the app may be started after the server; each call then rings 30 s, its webhook "
        "retried like the API's",
    )
    sip.add_argument("--webhook-secret", metavar="whsec_...", help="sign the webhooks with this secret")
    sip.add_argument("--sip-calls", type=int, default=1, metavar="N", help="calls placed one after the other")
    sip.add_argument("--sip-interval", type=float, default=0.0, metavar="SECONDS", help="pause between those calls")


def _server_options(args: argparse.Namespace) -> ServerOptions:
    tool = None
    if args.tool_call:
        name, _, arguments = args.tool_call.partition(":")
        tool = ToolScript(name, arguments or "{}")
    faults = Faults(
        call_delay=args.call_delay,
        call_status=args.call_status,
        sideband_accept_delay=args.sideband_accept_delay,
        websocket_accept_delay=args.websocket_accept_delay,
        refuse_sideband_joins=args.refuse_sideband_joins,
        websocket_status=args.websocket_status,
        close_after_events=args.close_after_events,
        close_mode=args.close_mode,
        ignore_client_close=args.ignore_client_close,
        inject=tuple(args.inject),
        oversized_bytes=args.oversized_bytes,
        retry_after=args.retry_after,
        media_unreachable=args.media_unreachable,
        drop_sideband=args.drop_sideband,
        drop_sideband_after=args.drop_sideband_after,
        drop_sideband_times=args.drop_sideband_times,
    )
    tls = None
    if args.certfile:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            tls.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load --certfile {args.certfile}: {exc}") from exc
    elif args.keyfile:
        raise ValueError("--keyfile needs --certfile")
    return ServerOptions(
        tls=tls,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        delta_interval=args.delta_interval,
        reply_text=args.reply_text,
        tool_call=tool,
        echo=args.echo,
        loopback=args.loopback,
        faults=faults,
        session_max_seconds=args.session_max_seconds,
        call_connect_seconds=args.call_connect_seconds,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        sip_webhook=args.sip_webhook,
        webhook_secret=_webhook_secret(args.webhook_secret),
        sip=SipScript(calls=args.sip_calls, interval=args.sip_interval),
        unused_call_seconds=args.unused_call_seconds,
        record_limit=args.record_limit,
    )


def _webhook_secret(secret: str | None) -> str | None:
    """The ``--webhook-secret``, checked now (a ``ValueError`` that never shows the secret)."""
    if secret is not None:
        WebhookSigner(secret)
    return secret


async def _serve(options: ServerOptions) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_local_server(options) as server:
            print(server.base_url, flush=True)
            if options.sip_webhook:
                ringing = redact_url(options.sip_webhook)
                print(f"ringing {ringing} ({options.sip.calls} simulated SIP call(s))", flush=True)
            async for _ in signals:
                break


#: What binding a listening socket fails with when the address is taken, not this machine's or not allowed.
_BIND_ERRNOS: Final = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _bind_error(exc: BaseException) -> OSError | None:
    """The bind failure ``exc`` is (or a group holds as its only failure), else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) and exc.errno in _BIND_ERRNOS else None


def _run_listening(command: str, host: str, port: int, run: Callable[[*Ts], Awaitable[None]], *args: *Ts) -> int:
    """``trio.run(run, *args)`` for a command that listens on ``host:port``: 0 once it ends, 1 with one line on
    stderr when the address cannot be bound (a busy port), any other failure raised as is."""
    try:
        trio.run(run, *args)
    except (OSError, BaseExceptionGroup) as exc:
        failure = _bind_error(exc)
        if failure is None:
            raise
        reason = failure.strerror or str(failure)
        print(f"rtengine {command}: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtengine", description="Realtime conversations for trio.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local realtime server until Ctrl-C")
    _add_server_arguments(serve)
    demo = commands.add_parser("demo", help="one conversation against the embedded local server (offline)")
    _add_conversation_arguments(demo)
    demo.add_argument("--sideband-delay", type=float, default=0.0, help="seconds the local server delays the join")
    demo.add_argument(
        "--session-cap",
        type=float,
        help="seconds: the local server's session cap (the API's is 3600); webrtc calls are re-dialed before it",
    )
    web = commands.add_parser("web", help="a web page holding the call in the browser, with server-side controls")
    add_web_arguments(web)
    phone = commands.add_parser("phone", help="a phone agent answering a simulated SIP call (embedded local server)")
    phone.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    call = commands.add_parser("call", help="one conversation against any server ($OPENAI_API_KEY for the key)")
    call.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or rtengine serve's URL")
    call.add_argument("--model", help="the realtime model (default: gpt-realtime)")
    call.add_argument(
        "--loopback", action="store_true", help="webrtc: pin ICE to 127.0.0.1 (for rtengine serve --loopback)"
    )
    call.add_argument("--ca-file", help="trust this CA (PEM) for the server's TLS, instead of the system's CAs")
    _add_conversation_arguments(call)
    return parser


def _add_conversation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("webrtc", "websocket"), default="webrtc", help="default: webrtc")
    parser.add_argument("--text", default="Hello from rtengine!", help="the user text to send")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    parser.add_argument("--seconds", type=float, default=3.0, help="webrtc: seconds of 440 Hz tone to send")
    parser.add_argument("--wav-in", help="webrtc: send this WAV (16-bit mono 24 kHz) instead of the tone")
    parser.add_argument("--wav-out", default="rtengine-demo.wav", help="webrtc: write the received audio here")
    parser.add_argument(
        "--speak",
        action="store_true",
        help="websocket: speak the turn (a synthetic utterance, server VAD answers) instead of sending --text",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    if args.command == "serve":
        try:
            options = _server_options(args)
        except ValueError as exc:
            print(f"rtengine serve: {exc}", file=sys.stderr)
            return 2
        return _run_listening("serve", args.host, args.port, _serve, options)
    if args.command == "web":
        return web_main(args)
    if args.command == "phone":
        answered = trio.run(functools.partial(run_phone_demo, seconds=args.timeout))
        return 0 if answered is not None and "accepted" in answered.phases() else 1
    common = {
        "text": args.text,
        "transport": args.transport,
        "timeout": args.timeout,
        "seconds": args.seconds,
        "wav_in": args.wav_in,
        "wav_out": args.wav_out,
        "speak": args.speak,
    }
    if args.command == "call":
        call_options = DemoOptions(
            base_url=args.base_url, model=args.model, loopback=args.loopback, ca_file=args.ca_file, **common
        )
        return demo_main(call_options)
    return demo_main(DemoOptions(sideband_delay=args.sideband_delay, session_cap=args.session_cap, **common))


if __name__ == "__main__":
    sys.exit(main())
