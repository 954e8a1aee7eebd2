"""The arguments of ``rtengine serve`` (the local realtime server's options, latency and fault knobs) and the
:class:`~rtengine.server.ServerOptions` they make."""

from __future__ import annotations

import argparse
import os
import re
import ssl

from ..server import INJECTIONS, Faults, ServerOptions, SipScript, ToolScript, check_injection
from ..webhooks import WebhookSigner

__all__ = ["add_server_arguments", "positive_count", "positive_seconds", "server_options"]


def _injection(value: str) -> str:
    try:
        return check_injection(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from exc
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {value!r}")
    return seconds


def positive_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from exc
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value!r}")
    return count


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
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
        type=positive_count,
        default=1,
        metavar="N",
        help="with --drop-sideband: drop once N server events were sent on that sideband (default: 1)",
    )
    faults.add_argument(
        "--drop-sideband-times",
        type=positive_count,
        default=1,
        metavar="K",
        help="with --drop-sideband: drop the first K sidebands of each call; later joins stay (default: 1)",
    )
    faults.add_argument(
        "--drop-sideband-on",
        metavar="TYPE",
        help="with --drop-sideband: drop when the sideband's next client event of TYPE (e.g. response.create) "
        "arrives, before the server reads it (instead of after N server events)",
    )
    parser.add_argument(
        "--session-max-seconds",
        type=positive_seconds,
        default=3600.0,
        metavar="S",
        help="session cap: close each session's sockets with 1001 and end its call after S seconds (default: 3600)",
    )
    parser.add_argument(
        "--call-connect-seconds",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="end a call whose media peer has not connected within S seconds (default: 30)",
    )
    parser.add_argument(
        "--header-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds a client has for a request head (and an idle keep-alive for its next one); 408 (default: 10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="seconds a client has for a whole request body, else 408 (default: 30)",
    )
    parser.add_argument(
        "--max-connections",
        type=positive_count,
        default=1000,
        metavar="N",
        help="TCP connections served at once; one more is answered 503 with Retry-After (default: 1000)",
    )
    parser.add_argument(
        "--max-calls",
        type=positive_count,
        default=200,
        metavar="N",
        help="WebRTC calls open at once (each holds an answering peer); one more is answered 503 with Retry-After "
        "(default: 200)",
    )
    parser.add_argument(
        "--unused-call-seconds",
        type=positive_seconds,
        default=120.0,
        metavar="S",
        help="end a call no sideband joined and whose data channel stayed silent after S seconds (default: 120)",
    )
    parser.add_argument(
        "--slow-client-seconds",
        type=positive_seconds,
        default=10.0,
        metavar="S",
        help="reset a websocket client that has not taken the next frame for S seconds, so that it never stalls "
        "the call's other views (default: 10)",
    )
    parser.add_argument(
        "--record-limit",
        type=positive_count,
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


def server_options(args: argparse.Namespace) -> ServerOptions:
    """The ``ServerOptions`` the arguments ask for. Raises ``ValueError`` naming the flag at fault: the options' own
    checks name their fields (``drop_sideband_on``), given back as the flags a user typed (``--drop-sideband-on``)."""
    try:
        return _server_options(args)
    except ValueError as exc:
        message = str(exc)
        for name in sorted((dest for dest in vars(args) if "_" in dest), key=len, reverse=True):
            message = re.sub(rf"(?<![\w-]){name}(?![\w-])", "--" + name.replace("_", "-"), message)
        raise ValueError(message) from None


def _server_options(args: argparse.Namespace) -> ServerOptions:
    tool = None
    if args.tool_call:
        name, _, arguments = args.tool_call.partition(":")
        tool = ToolScript(name, arguments or "{}")
    if args.drop_sideband_on is not None and args.drop_sideband is None:
        raise ValueError("--drop-sideband-on needs --drop-sideband")
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
        drop_sideband_on=args.drop_sideband_on,
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
        max_calls=args.max_calls,
        sip_webhook=args.sip_webhook,
        webhook_secret=_webhook_secret(args.webhook_secret),
        sip=SipScript(calls=args.sip_calls, interval=args.sip_interval),
        unused_call_seconds=args.unused_call_seconds,
        slow_client_seconds=args.slow_client_seconds,
        record_limit=args.record_limit,
    )


def _webhook_secret(secret: str | None) -> str | None:
    """The ``--webhook-secret``, checked now (a ``ValueError`` that never shows the secret)."""
    if secret is not None:
        WebhookSigner(secret)
    return secret
