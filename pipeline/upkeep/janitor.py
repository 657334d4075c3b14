"""The janitor's rules, for every target: a run's age from its id, which ages count, which runs are alive.

Every resource a bake creates is named or tagged with its run id, and a run id
starts with the time the run began (``YYYYMMDDTHHMMSSZ-xxxxxx``). The janitor
only touches runs older than ``--older-than`` (default 3 hours), and never a
run that is alive: one holding a live lease in the catalog (any machine) or an
image lock on this machine — but a lease of this machine whose run this home's
image locks prove dead (named, not held: a SIGKILL left it unreleased) does not
keep its run alive until it expires. Age alone cannot tell: a run id is made once per
invoke, before lease waits and the chain's later layers, and on another
machine's clock. Each target says what its killed runs leave behind
(``Target.leftovers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.catalog.leases import Lease
    from pipeline.catalog.records import ImageRecord

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


def live_runs(leases: Iterable[Lease], here: Mapping[str, bool], host: str) -> set[str]:
    """The runs alive by ``leases`` (live ones, from the catalog) and ``here`` (this home's image locks: run id
    → held): every run holding a lock, and every lease's run except this ``host``'s whose locks say it died."""
    live = {run_id for run_id, held in here.items() if held}
    return live | {lease.run_id for lease in leases if lease.host != host or here.get(lease.run_id, True)}


def abandoned(record: ImageRecord, leases: Iterable[Lease], live: set[str], older_than: timedelta,
              now: datetime | None = None) -> bool:
    """A ``building`` record no bake holds any more: no live lease on its image and bake key (on any target:
    a shared catalog's record may be another target's), its run not alive, and started ``older_than`` ago."""
    held = any(lease.image == record.name and lease.key == record.fingerprint for lease in leases)
    started = run_started(record.run_id)
    old = started is not None and (now or datetime.now(UTC)) - started >= older_than
    return record.status == "building" and not held and not alive(record.run_id, live) and old


def alive(run: str, live: set[str]) -> bool:
    """Whether the run named in ``run`` (a run id, or a name containing one) is among the ``live`` ones."""
    match, ids = RUN_RE.search(run), {m.group(1) for r in live if (m := RUN_RE.search(r))}
    return match is not None and match.group(1) in ids


def run_of(tags: Mapping[str, str], name: str = "") -> str:
    """The run a resource belongs to: its ``kiln:run-id`` tag, or a ``kiln-<run-id>…`` name; "" when neither."""
    if tags.get("kiln:run-id"):
        return tags["kiln:run-id"]
    match = RUN_RE.search(name) if name.startswith("kiln-") else None
    return match.group(1) if match else ""
