"""The janitor's rules, for every target: a run's age from its id, and which ages count.

Every resource a bake creates is named or tagged with its run id, and a run id
starts with the time the run began (``YYYYMMDDTHHMMSSZ-xxxxxx``). The janitor
only touches runs older than ``--older-than`` (default 3 hours: longer than any
bake, so a bake running on another Jenkins agent right now is left alone); each
target says what its killed runs leave behind (``Target.leftovers``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pipeline.errors import ConfigError

RUN_RE = re.compile(r"(\d{8}T\d{6}Z-[0-9a-f]{6})")


@dataclass(frozen=True)
class CatalogView:
    """What the janitor knows of the catalog before it deletes any artifact: where it is, whether it is there,
    its id (the ``kiln:catalog`` tag of what it records) and every version's status."""

    where: str
    missing: bool = False
    catalog_id: str = ""
    statuses: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @property
    def blind(self) -> bool:
        """A missing or empty catalog knows nothing: a janitor reading it must not judge any artifact."""
        return self.missing or not self.statuses


def parse_age(text: str) -> timedelta:
    """``3h`` / ``90m`` / ``2d`` / ``0`` → a timedelta."""
    match = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not match:
        raise ConfigError(f"invalid --older-than value {text!r}", hint="e.g. 3h, 90m, 2d or 0")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    return timedelta(seconds=int(match.group(1)) * unit)


def run_started(run_id: str) -> datetime | None:
    """When a run began, from its id (or from any name that contains it)."""
    match = RUN_RE.search(run_id)
    if not match:
        return None
    return datetime.strptime(match.group(1)[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def run_of(tags: Mapping[str, str], name: str = "") -> str:
    """The run a resource belongs to: its ``kiln:run-id`` tag, or a ``kiln-<run-id>…`` name; "" when neither."""
    if tags.get("kiln:run-id"):
        return tags["kiln:run-id"]
    match = RUN_RE.search(name) if name.startswith("kiln-") else None
    return match.group(1) if match else ""
