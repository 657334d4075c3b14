"""Bake, plan, the image list and the foundation, for any target."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import config, targets
from pipeline.app import parallel
from pipeline.bake import orchestrator as bake_mod
from pipeline.bake.layer import Git
from pipeline.bake.lease import Keeper, patience_from, ttl_from
from pipeline.bake.plan import Decision, Planner
from pipeline.bake.run import Run, StepHook, new_run_id
from pipeline.bake.schedule import Spawn
from pipeline.catalog import Catalog
from pipeline.errors import ConfigError, KilnError
from pipeline.progress import Reporter, Row
from pipeline.targets.base import Builder, Target
from pipeline.targets.local import converge as workspace
from pipeline.targets.local import foundation
from pipeline.targets.local.converge import Converged
from pipeline.upkeep import updates

BUILDER_ENV = "KILN_BUILDER"  # the builder of every image, over kiln.toml (the command line's --builder wins)


def select(project: config.Project, image: str, all_: bool) -> list[str]:
    """The images a task works on: IMAGE, several as ``base,app`` (or ``"base app"``), or all with ``--all``.

    invoke gives a task one positional per name, so several images travel in one
    argument; the weekly job passes its IMAGES parameter that way."""
    if all_ and image:
        raise ConfigError("give an IMAGE or --all, not both")
    if all_:
        return sorted(project.images)
    names = list(dict.fromkeys(n for n in re.split(r"[,\s]+", image) if n))
    if not names:
        raise ConfigError("give an IMAGE or --all", hint="several images: base,app")
    for name in names:
        project.get(name)
    return names


def security_checker(root: Path, cache: Path, reporter: Reporter) -> Callable[[list[dict[str, str]]], list[Any]] | None:
    """The pending-update check for the foundation's apt sources; None (and a line saying why) when unavailable."""
    try:
        recipe = foundation.Recipe.load(root / "packer" / "foundation")
        return updates.checker(recipe.sources, cache / "debian-indexes")
    except KilnError as exc:
        reporter.line(f"security updates: not checked ({exc.message})")
        return None


@dataclass
class BakeResult:
    """The summary rows of the layers that were baked or verified (empty when all was up to date)."""

    rows: list[Row] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def chosen(image: str, all_: bool, target: str, region: str, builder: str) -> tuple[
        config.Paths, config.Project, list[str], Target, dict[str, Builder], dict[str, dict[str, str]]]:
    """What a bake or plan works on: paths, project, image names, the target, each image's builder (the
    command line's, else KILN_BUILDER, else kiln.toml's) and its tool values, host tools checked."""
    paths = config.default_paths()
    project = config.load(paths.project)
    names = select(project, image, all_)
    place = targets.open_target(target, paths, region=region)
    from_env = "" if builder else os.environ.get(BUILDER_ENV, "")
    if from_env and from_env not in place.builders:
        raise ConfigError(f"{BUILDER_ENV}={from_env}: unknown builder for target {place.name}",
                          hint=f"builders: {', '.join(sorted(place.builders))}")
    builders = targets.builders_for(place, project.order(names), builder or from_env)
    return paths, project, names, place, builders, targets.values_for(place, builders)


def bake(image: str, *, all_: bool = False, force: bool = False, target: str = "local", region: str = "",
         builder: str = "", verbose: bool = False, security_updates: bool = False, hooks: Sequence[StepHook] = (),
         result: BakeResult | None = None, wait: bool = True, jobs: int | str = "", fail_fast: bool = False,
         spawn: Spawn | None = None) -> BakeResult:
    """Bake IMAGE (or every image) and what it is built on, exactly what is outdated; ``result`` fills as it goes.

    ``wait``: when another machine holds an image's lease, wait for it (else LeaseHeld, exit 75).
    ``jobs`` (default: the target's) over 1: images whose parents are done bake at once, each in a bake process
    of its own (``spawn`` starts one; default: ``invoke bake IMAGE`` with the same options)."""
    result = result if result is not None else BakeResult()
    paths, project, names, place, builders, values = chosen(image, all_, target, region, builder)
    jobs = parallel.at_once(project, names, parallel.job_count(jobs) if jobs != "" else place.default_jobs)
    place.connect()
    run_id = new_run_id()
    reporter = Reporter(log=paths.logs / run_id / "bake.log")
    checker = security_checker(project.root, paths.cache, reporter) if security_updates else None
    if jobs > 1:
        options = {"target": target, "region": region, "builder": builder, "verbose": verbose,
                   "security-updates": security_updates, "no-wait": not wait}
        with place.open_catalog() as cat:
            result.decisions = planner(project, cat, place, builders, values, checker).plan(
                names, force=names if force else ())
        spawn = spawn or parallel.invoke_bake(options, names if force else ())
        return parallel.bake_many(project, result, paths.logs / run_id, reporter, spawn, jobs=jobs,
                                  fail_fast=fail_fast)
    keeper = Keeper(run_id, place.name, wait=wait, ttl=ttl_from(os.environ), patience=patience_from(os.environ))
    with place.open_catalog() as cat:
        run = Run(paths=paths, project=project, catalog=cat, reporter=reporter, target=place, builders=builders,
                  git=Git.of(paths.project), run_id=run_id, tool_values=values, verbose=verbose,
                  hooks=(*hooks, keeper.check), updates=checker, rows=result.rows, leases=keeper)
        result.decisions = bake_mod.bake(run, names, force=names if force else ())
    return result


@dataclass(frozen=True)
class PlanResult:
    """The decisions, parents first, and the project they are about."""

    project: config.Project
    decisions: list[Decision]


def plan(image: str, *, all_: bool = False, target: str = "local", builder: str = "", region: str = "",
         security_updates: bool = False) -> PlanResult:
    """What a bake would do, and why, without building anything."""
    paths, project, names, place, builders, values = chosen(image, all_, target, region, builder)
    checker = security_checker(project.root, paths.cache, Reporter()) if security_updates else None
    place.connect()
    with place.open_catalog() as cat:
        return PlanResult(project, planner(project, cat, place, builders, values, checker).plan(names))


def planner(project: config.Project, cat: Catalog, place: Target, builders: dict[str, Builder],
            values: dict[str, dict[str, str]], checker: Callable[[list[dict[str, str]]], list[Any]] | None) -> Planner:
    """The bake-key planner for a bake or plan of this project on ``place`` with these builders."""
    return Planner(project, cat, place, lambda spec: values[spec.name], checker,
                   lambda spec: builders[spec.name].key_files)


def images() -> list[str]:
    """The declared images, parents before children."""
    project = config.load(config.default_paths().project)
    return [spec.name for spec in project.order(project.images)]


def build_foundation(progress: Callable[[str], None]) -> Path:
    """Build (once per recipe) or find the cached Debian foundation every local image starts from."""
    paths = config.default_paths()
    recipe = foundation.Recipe.load(paths.project / "packer" / "foundation")
    log = paths.logs / "foundation.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return foundation.ensure(recipe, paths.cache, log, progress=progress)


def converge(image: str, *, reset: bool = False, specs: bool = False, verbose: bool = False) -> Converged:
    """Apply IMAGE's current playbook to its chroot workspace (local); nothing is recorded."""
    paths = config.default_paths()
    project = config.load(paths.project)
    with targets.open_target("local", paths).open_catalog() as cat:
        return workspace.converge(paths, project, cat, image, reset=reset, specs=specs, stream=verbose)
