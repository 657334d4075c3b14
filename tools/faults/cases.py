"""The interrupt cases of the chain and the outcome of each, with the table ``invoke faults`` prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.progress import grid

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
WRITERS = 50


@dataclass(frozen=True)
class Case:
    """One interrupt: which signal, in which phase, of which image, after how long in that phase."""

    signal: str
    phase: str
    image: str
    settle: float = 0.0  # seconds to wait once the phase is reached, to land deeper in it

    @property
    def name(self) -> str:
        """``SIGINT foundation`` …"""
        return f"{self.signal} {self.phase} ({self.image})"

    def where_words(self) -> str:
        """What the bake's last line must say about where it stopped."""
        return {"foundation": "during the foundation build", "build": f"during build of {self.image}@",
                "build idempotence": f"during build of {self.image}@",
                "verify boot": f"during verify (boot) of {self.image}@",
                "specs": f"during verify (specs) of {self.image}@",
                "publish": f"during record of {self.image}@"}[self.phase]


# Every phase gets both signals; a case's next run passes through the phase it interrupted
# (except the first foundation case, whose next run is interrupted in the foundation again).
# The bakes use the default builder, the chroot builder: "build" is its first converge in the chroot of
# the mounted layer, "build idempotence" its second (Packer's build is stopped in the aws group).
CHAIN: tuple[Case, ...] = (
    Case("SIGINT", "foundation", "base", settle=8),
    Case("SIGTERM", "foundation", "base", settle=30),
    Case("SIGINT", "build", "base", settle=3),
    Case("SIGTERM", "build idempotence", "base", settle=1),
    Case("SIGTERM", "verify boot", "base", settle=3),
    Case("SIGINT", "specs", "base", settle=2),
    Case("SIGTERM", "publish", "base"),
    Case("SIGTERM", "build", "app", settle=2),
    Case("SIGINT", "build idempotence", "app", settle=1),
    Case("SIGINT", "verify boot", "app", settle=10),
    Case("SIGTERM", "specs", "app", settle=4),
    Case("SIGINT", "publish", "app"),
)


@dataclass
class Outcome:
    """What one case found: the columns of the table, and the evidence behind them."""

    case: str
    phase: str
    signal: str = ""
    orphans: int = 0
    half_published: int = 0
    resumed: str = "-"
    seconds: float = 0.0
    stop_seconds: float = 0.0
    exit_code: int | None = None
    last_line: str = ""
    version: str = ""
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No orphan, nothing half-published, resumed where that applies, and no other problem."""
        return not self.orphans and not self.half_published and self.resumed in ("yes", "-") and not self.problems


def table(outcomes: Sequence[Outcome]) -> str:
    """The figures, one row per case."""
    rows = [(o.case, o.phase, str(o.orphans), str(o.half_published), o.resumed.split(":")[0],
             f"{o.seconds:.1f}", f"{o.stop_seconds:.1f}" if o.signal else "-",
             str(o.exit_code) if o.exit_code is not None else "-", "ok" if o.ok else "FAIL")
            for o in outcomes]
    return grid(("CASE", "PHASE", "ORPHANS", "HALF-PUBLISHED", "RESUMED OK", "SECONDS", "STOP S", "EXIT",
                 "VERDICT"), rows)


def write_json(outcomes: Sequence[Outcome], path: Path) -> None:
    """The outcomes as JSON, for tests and CI artifacts."""
    path.write_text(json.dumps([{**asdict(o), "ok": o.ok} for o in outcomes], indent=2) + "\n")
