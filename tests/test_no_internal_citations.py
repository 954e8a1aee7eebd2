"""What users read — the package's docstrings and comments, and the documentation site — cites no internal
document: no design notes, no section numbers of the protocol notes, no pull-request or issue numbers of this
project. Public references (an RFC section, another project's issue such as ``encode/httpcore#1093``) are fine.
"""

from __future__ import annotations

import pathlib
import re

import rtengine

ROOT = pathlib.Path(rtengine.__file__).parent.parent

#: What an internal citation looks like.
INTERNAL = re.compile(
    r"stack-notes|realtime-protocol|engine-shape|real-traffic|seed-pr|shared/(?:reference|design)|design/"
    r"|§"  # a section sign (one after "RFC nnnn" is a public reference: spared below)
    r"|\bPR ?#\d+|\bissues? ?#\d+|(?<![\w/])#\d{3,}\b|\bthe seed\b|\b(?:finding|review) #?\d+\b",
    re.IGNORECASE,
)


def _read() -> list[pathlib.Path]:
    sources = sorted((ROOT / "rtengine").rglob("*.py"))
    docs = ROOT / "docs"
    return sources + sorted(
        p for p in docs.rglob("*") if p.suffix in {".rst", ".py", ".md"} and "_build" not in p.parts
    )


def citations(text: str) -> list[str]:
    found = []
    for match in INTERNAL.finditer(text):
        before = text[max(0, match.start() - 12) : match.start()]
        if match.group() == "§" and re.search(r"RFC \d+ $", before):
            continue
        found.append(text[max(0, match.start() - 30) : match.end() + 20].replace("\n", " "))
    return found


def test_the_pattern_finds_what_it_must_and_spares_public_references() -> None:
    for cited in (
        "(stack-notes §3)",
        "realtime-protocol §5.3",
        "the pre-#20715 behaviour",
        "PR #12",
        "issue #13",
        "§8",
    ):
        assert citations(cited), cited
    for public in ("RFC 9110 §10.2.3", "encode/httpcore#1093", "color: #55607a", "a random seed"):
        assert citations(public) == [], public


def test_nothing_users_read_cites_an_internal_document() -> None:
    offenders = [f"{path.relative_to(ROOT)}: {hit}" for path in _read() for hit in citations(path.read_text())]
    assert offenders == []
