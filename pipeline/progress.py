"""Progress lines and the end-of-bake summary.

One line per step with elapsed time goes to the terminal (and the run's
``bake.log``); the tools' own output goes only to the log files unless
``--verbose`` streams it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


def fmt_seconds(seconds: float) -> str:
    """``42.1s`` / ``3m05s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


COLOURS = {"done": "32", "verified": "32", "up to date": "32", "failed": "31", "interrupted": "33",
           "bake:": "36", "re-verify:": "36"}


def colourise(text: str) -> str:
    """ANSI colours for the verdict words of a line."""
    for word, code in COLOURS.items():
        text = text.replace(word, f"\033[{code}m{word}\033[0m")
    return text


class Reporter:
    """Writes progress lines to a stream (coloured only on a terminal, unless NO_COLOR) and to a log file."""

    def __init__(self, stream: TextIO | None = None, log: Path | None = None) -> None:
        import os

        self.stream = stream or sys.stdout
        self.log = log
        self.start = time.monotonic()
        self.colour = bool(getattr(self.stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ

    def line(self, text: str) -> None:
        """One progress line, prefixed with the time since the run started."""
        self.say(f"[{fmt_seconds(time.monotonic() - self.start):>7}] {text}")

    def say(self, msg: str) -> None:
        """A line as it is (verdicts such as "up to date: …" that scripts may read)."""
        print(colourise(msg) if self.colour else msg, file=self.stream, flush=True)
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "a") as fh:
                fh.write(msg + "\n")


@dataclass(frozen=True)
class Row:
    """One image of the summary table."""

    image: str
    version: str
    status: str
    seconds: float
    artifact: str


def grid(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body, strict=False)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in (head, *body))


def table(rows: Sequence[Row]) -> str:
    """The bake summary: image, version, status, duration, artifact."""
    return grid(("IMAGE", "VERSION", "STATUS", "DURATION", "ARTIFACT"),
                [(r.image, r.version, r.status, fmt_seconds(r.seconds), r.artifact) for r in rows])
