"""Keeping a project and its images in order: validate, new, prune, janitor — for any target."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipeline import config, janitor, prune, targets, validate
from pipeline import scaffold as scaffold_mod
from pipeline.errors import CatalogMissing
from pipeline.validate import Finding


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


@dataclass(frozen=True)
class SweepResult:
    """What the janitor found or removed: one line each, or the line saying there was nothing."""

    lines: list[str]


def sweep(*, target: str = "aws", dry_run: bool = False, older_than: str = "3h", region: str = "") -> SweepResult:
    """Find and remove what killed bakes left behind (runs older than ``older_than``)."""
    age = janitor.parse_age(older_than)
    place = targets.open_target(target, config.default_paths(), region=region)

    def view() -> janitor.CatalogView:
        try:
            cat = place.open_catalog(create=False)
        except CatalogMissing as exc:
            return janitor.CatalogView(str(exc).removeprefix("no catalog at "), missing=True)
        with cat:
            return janitor.CatalogView(cat.path, catalog_id=cat.identity(),
                                       statuses={(r.name, r.version): r.status for r in cat.versions()})

    found = place.leftovers(age, view)
    if not found:
        return SweepResult([f"janitor: nothing left behind in {place.scope()}"])
    if dry_run:
        return SweepResult([f"would remove {item.describe()}" for item in found])
    return SweepResult(place.clean(found))


def scaffold(name: str, parent: str = "base", forward: str = "") -> list[Path]:
    """``invoke new``: the new image's kiln.toml table, playbook and spec, in the project."""
    return scaffold_mod.new_image(config.default_paths().project, name, parent, forward)
