"""The ``rtengine`` command: ``serve`` (the local realtime server), ``demo``, ``web``, ``phone`` and ``call``.

Exit statuses: 0 when the command did what was asked, 1 with a one-line reason on stderr when it did not, 2 for
usage errors (argparse's own, and inputs checked before any network work), 130 on Ctrl-C (also while the command
is still importing: :mod:`rtengine._command`), 143 on SIGTERM (``demo``/``call``: the conversation is closed and
the summary printed), 141 when stdout was closed by its reader (``| head -1``). Errors go to stderr;
stdout carries the command's output (``--json``: one JSON document and nothing else). Logging:
:mod:`rtengine.apps._cli_logging`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence

import trio

from .._command import started
from ._cli_args import UsageError, parser, verbosity
from ._cli_listen import refuse_unbindable, run_listening, serve
from ._cli_logging import configure_logging
from ._cli_report import EXIT_INTERRUPTED, open_report
from ._cli_serve_args import server_options
from ._demo import DemoOptions, prepare, run_demo
from ._phone import run_phone_demo
from ._web_cli import web_main

__all__ = ["main"]

#: Exit status of a usage error (argparse's).
EXIT_USAGE = 2
#: Exit status when stdout was closed by its reader: 128 + SIGPIPE.
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtengine`` command with ``argv`` (default: ``sys.argv[1:]``); return its exit status.

    A closed stdout (``rtengine demo | head -1``) is no error of the command: the rest of its output goes to
    ``os.devnull`` (the recipe of Python's :mod:`signal` docs) and the status is 141, as shells report a command
    ended by SIGPIPE."""
    started()  # the start-up SIGINT handler (rtengine._command) hands over to KeyboardInterrupt
    try:
        return _main(argv)
    except BrokenPipeError:
        return _stdout_gone()
    except BaseExceptionGroup as group:  # a write to stdout inside trio.run
        if group.split(BrokenPipeError)[1] is not None:
            raise
        return _stdout_gone()


def _stdout_gone() -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's flush of stdout at exit would fail again
    return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    secrets = [getattr(args, "api_key", None), getattr(args, "webhook_secret", None), os.environ.get("OPENAI_API_KEY")]
    configure_logging(verbosity(args), secrets)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"rtengine {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a Ctrl-C before the command installed its own handling
        print(f"rtengine {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        try:
            options = server_options(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return run_listening("serve", options.host, options.port, serve, options)
    if args.command == "web":
        refused = refuse_unbindable("web", args.host, args.port)
        return refused if refused is not None else web_main(args)
    if args.command == "phone":
        answered = trio.run(functools.partial(run_phone_demo, seconds=args.timeout))
        return 0 if answered is not None and "accepted" in answered.phases() else 1
    return _converse(args)


def _converse(args: argparse.Namespace) -> int:
    """``demo`` and ``call``: check the inputs (usage errors), then run the conversation."""
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
        extra = {"base_url": args.base_url, "api_key": args.api_key, "model": args.model, "loopback": args.loopback}
        options = DemoOptions(ca_file=args.ca_file, **extra, **common)
    else:
        options = DemoOptions(sideband_delay=args.sideband_delay, session_cap=args.session_cap, **common)
    pcm_in = prepare(options)
    report = open_report(as_json=args.json)
    return trio.run(run_demo, options, report, pcm_in)


if __name__ == "__main__":
    sys.exit(main())
