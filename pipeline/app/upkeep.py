"""Keeping a project and its images in order: validate, new, prune, janitor — for any target."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pipeline import config, targets
from pipeline.app import validate
from pipeline.app.validate import Finding
from pipeline.bake import locks
from pipeline.errors import CatalogMissing
from pipeline.targets.base import Target
from pipeline.upkeep import janitor, prune
from pipeline.upkeep import scaffold as scaffold_mod


def check_project() -> list[Finding]:
    """Every check that needs no VM; the findings, each with file:line."""
    paths = config.default_paths()
    return validate.run(paths.project, work=paths.logs / "validate", cache=paths.cache / "packer")


@dataclass(frozen=True)
class PruneResult:
    """Every version's decision, and what deleting the doomed ones did (nothing on a dry run)."""

    decisions: list[prune.Decision]
    deleted: list[str] = field(default_factory=list)


def prune_images(*, keep: str = "3", dry_run: bool = False, target: str = "local", region: str = "") -> PruneResult:
    """Delete old versions' artifacts, never one that is needed; their records stay, marked deleted."""
    count = prune.parse_keep(keep)
    place = targets.open_target(target, config.default_paths(), region=region)
    with place.open_catalog(create=False) as cat:
        decisions = prune.plan(cat, keep=count, in_use=place.in_use(cat), target=place.name)
        if dry_run:
            return PruneResult(decisions)
        return PruneResult(decisions, place.delete(cat, [d for d in decisions if d.delete]))


ABANDONED = "its bake left it building (no live lease, its run not alive)"


@dataclass(frozen=True)
class SweepResult:
    """What the janitor found or removed: one line each, or the line saying there was nothing."""

    lines: list[str]


def sweep(*, target: str = "aws", dry_run: bool = False, older_than: str = "3h", region: str = "") -> SweepResult:
    """Find and remove what killed bakes left behind: runs older than ``older_than`` that are not alive (no
    live lease in the catalog, no image lock on this machine), whatever their run id says."""
    age = janitor.parse_age(older_than)
    paths = config.default_paths()
    place = targets.open_target(target, paths, region=region)
    seen, live, marked = catalog_view(place, locks.runs(paths.locks), age, dry_run=dry_run)
    found = place.leftovers(age, lambda: seen)
    kept = [f"janitor: left {item.describe()} (run {item.run_id} is alive: it holds a lease or lock)"
            for item in found if janitor.alive(item.run_id, live)]
    found = [item for item in found if not janitor.alive(item.run_id, live)]
    if not found:
        return SweepResult([*marked, *kept, f"janitor: nothing left behind in {place.scope()}"])
    if dry_run:
        return SweepResult([*marked, *kept, *(f"would remove {item.describe()}" for item in found)])
    return SweepResult([*marked, *kept, *place.clean(found)])


def catalog_view(place: Target, here: Mapping[str, bool], age: timedelta, *,
                 dry_run: bool) -> tuple[janitor.CatalogView, set[str], list[str]]:
    """What the janitor knows of the catalog, the runs alive by its leases and ``here`` (this home's image
    locks), and the lines for the ``building`` records no live bake holds, now marked interrupted (an
    unreadable store is an error: a janitor that cannot tell which runs are alive deletes nothing)."""
    try:
        cat = place.open_catalog(create=False)
    except CatalogMissing as exc:
        return janitor.CatalogView(str(exc).removeprefix("no catalog at "), missing=True), set(), []
    with cat:
        records = cat.versions()
        stuck = [r for r in records if r.status == "building"]
        building = zip(stuck, cat.generations(*((r.name, r.fingerprint) for r in stuck)), strict=True)
        leases = cat.leases.live()  # after the generations: a claim in between moves one, and abandon refuses
        live = janitor.live_runs(leases, here, socket.gethostname())
        statuses = {(r.name, r.version): r.status for r in records}
        lines = []
        for rec, seen in building:
            if janitor.abandoned(rec, leases, live, age) and (dry_run or cat.abandon(
                    rec.name, rec.version, key=rec.fingerprint, seen=seen, reason=ABANDONED)):
                statuses[(rec.name, rec.version)] = "interrupted"
                lines.append(f"{'would mark' if dry_run else 'marked'} {rec.ref} interrupted: {ABANDONED}")
        return janitor.CatalogView(cat.path, catalog_id=cat.identity(), statuses=statuses), live, lines


def scaffold(name: str, parent: str = "base", forward: str = "") -> list[Path]:
    """``invoke new``: the new image's kiln.toml table, playbook and spec, in the project."""
    return scaffold_mod.new_image(config.default_paths().project, name, parent, forward)
