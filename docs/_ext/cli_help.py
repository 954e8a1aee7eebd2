"""``.. rtengine-cli-help::``: the ``--help`` of the ``rtengine`` command and of each subcommand, as the installed
command prints it, so the CLI page cannot drift from the code."""

from __future__ import annotations

import argparse
import os

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class CliHelp(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        from rtengine.apps._cli_args import parser as rtengine_parser

        os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width
        parser = rtengine_parser()
        out: list[nodes.Node] = [nodes.literal_block(text=parser.format_help())]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    section = nodes.section(ids=[f"rtengine-{name}"])
                    section += nodes.title(text=f"rtengine {name}")
                    section += nodes.literal_block(text=sub.format_help())
                    out.append(section)
        return out


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("rtengine-cli-help", CliHelp)
    return {"parallel_read_safe": True}
