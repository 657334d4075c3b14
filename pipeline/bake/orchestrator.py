"""Bake an image and, first, whatever it is built on — on any target, with any builder.

For each image, in dependency order, under the image's lock on this machine
and its lease in the catalog (``pipeline.bake.lease``: no other machine sharing
the catalog bakes it meanwhile), the plan is made again: up to date,
re-verify, or bake. A bake starts a new version, or
goes on with an earlier attempt of the same bake that the target found (the
image was already stored, the AMI already registered); the steps themselves
are ``pipeline.bake.steps``. A spec-only change verifies the existing image again.
The catalog never says ``verified`` for an image that was not.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.bake import locks
from pipeline.bake import plan as plan_mod
from pipeline.bake.inputs import Inputs
from pipeline.bake.layer import Earlier, Git, Layer, Source
from pipeline.bake.lease import Keeper
from pipeline.bake.run import Run
from pipeline.bake.steps import REVERIFY_STEPS, STEPS, run_steps, steps_from
from pipeline.config import ImageSpec
from pipeline.errors import VerificationFailed
from pipeline.evidence import write_json
from pipeline.progress import Row


def new_layer(run: Run, spec: ImageSpec, decision: plan_mod.Decision, source: Source, found: Inputs) -> Layer:
    """A new version of ``spec``, recorded ``building``, with its log folder."""
    version = run.catalog.begin_bake(
        name=spec.name, parent=(source.parent.name, source.parent.version) if source.parent else None,
        fingerprint=found.key, git_commit=run.git.commit, git_dirty=run.git.dirty, run_id=run.run_id, log_dir="",
        inputs=found.to_json())
    layer = Layer(spec=spec, version=version, source=source, inputs=found,
                  log_dir=log_folder(run, spec, version, found),
                  scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=run.git, spec_digest=decision.spec_digest,
                  builder=found.values.get("builder", ""))
    run.reporter.line(f"{layer.ref}: bake on {source.label}{source.place} — {'; '.join(decision.reasons)} "
                      f"(key {found.key[7:19]}, logs {layer.log_dir})")
    return layer


def log_folder(run: Run, spec: ImageSpec, version: str, found: Inputs, recorded: str = "") -> Path:
    """The version's log folder: the one its record names, or a new one in this run's (with its inputs)."""
    folder = Path(recorded) if recorded else run.log_dir / f"{spec.name}-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    if not recorded:
        write_json(folder / "inputs.json", found.to_json())
        run.catalog.set_log_dir(spec.name, version, str(folder))
    return folder


def earlier_layer(run: Run, spec: ImageSpec, decision: plan_mod.Decision, source: Source, found: Inputs,
                  earlier: Earlier) -> Layer | None:
    """Go on with an earlier attempt of this bake: its record is ``building`` again (made anew if lost)."""
    status = next((r.status for r in run.catalog.versions(spec.name) if r.version == earlier.version), None)
    git = earlier.git or run.git
    if status in ("interrupted", "building"):
        run.catalog.resume(spec.name, earlier.version, reason=earlier.reason)
    elif status is None:
        run.catalog.begin_bake(name=spec.name, parent=(source.parent.name, source.parent.version)
                               if source.parent else None, fingerprint=found.key, git_commit=git.commit,
                               git_dirty=git.dirty, run_id=run.run_id, log_dir="", inputs=found.to_json(),
                               version=earlier.version)
    else:
        return None  # it ended (verified, failed, …): a new bake starts
    rec = run.catalog.get(spec.name, earlier.version)
    layer = Layer(spec=spec, version=rec.version, source=source, inputs=found,
                  log_dir=log_folder(run, spec, rec.version, found, rec.log_dir),
                  scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=Git(rec.git_commit, rec.git_dirty),
                  spec_digest=decision.spec_digest, built=earlier.built, artifacts=earlier.artifacts,
                  builder=found.values.get("builder", ""))
    run.reporter.line(f"{layer.ref}: {earlier.note} (logs {layer.log_dir})")
    return layer


def bake_layer(run: Run, spec: ImageSpec, decision: plan_mod.Decision) -> Row:
    """Bake one layer (or go on with an earlier attempt); the record ends verified, failed or interrupted."""
    source = run.target.source(run, spec)
    found = decision.inputs or run.planner().inputs_for(spec, source.parent)
    earlier = None if decision.forced else run.target.find_earlier(run, spec, found.key)
    layer = earlier_layer(run, spec, decision, source, found, earlier) if earlier else None
    if layer is not None and earlier is not None:
        return run_steps(run, layer, steps_from(earlier.resume_at))
    return run_steps(run, new_layer(run, spec, decision, source, found), STEPS)


def reverify_layer(run: Run, spec: ImageSpec, decision: plan_mod.Decision) -> Row:
    """Verify an existing version again with the current specs; a failed gate marks it failed, an error of
    the world (or an interrupt) leaves it as it was."""
    rec = decision.current
    assert rec is not None
    artifacts = run.target.usable(rec)
    log_dir = run.log_dir / f"{spec.name}-{rec.version}-reverify"
    log_dir.mkdir(parents=True, exist_ok=True)
    build_key = Path(rec.log_dir) / "build-key.pub"
    if build_key.exists():
        shutil.copyfile(build_key, log_dir / "build-key.pub")
    values = rec.inputs.get("values", {}) if isinstance(rec.inputs, dict) else {}
    foundation = str(values.get("foundation", ""))
    label = f"{rec.parent[0]}@{rec.parent[1]}" if rec.parent else run.target.root_label(foundation)
    layer = Layer(spec=spec, version=rec.version, source=Source(None, "", label),
                  inputs=decision.inputs or Inputs({}, {}), log_dir=log_dir,
                  scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=Git(rec.git_commit, rec.git_dirty),
                  spec_digest=decision.spec_digest, artifacts=artifacts, builder=str(values.get("builder", "")),
                  built=run.builders[spec.name].evidence(Path(rec.log_dir)) if rec.log_dir else {})
    run.reporter.line(f"{layer.ref}: re-verify — {'; '.join(decision.reasons)} (logs {log_dir})")
    try:
        return run_steps(run, layer, REVERIFY_STEPS, only_verdicts=True)
    except VerificationFailed as exc:
        exc.message += f"; {layer.ref} is now recorded failed"
        raise


ACTIONS: dict[str, Callable[[Run, ImageSpec, plan_mod.Decision], Row]] = {
    plan_mod.BAKE: bake_layer,
    plan_mod.REVERIFY: reverify_layer,
}


def bake(run: Run, names: Sequence[str], *, force: Sequence[str] = ()) -> list[plan_mod.Decision]:
    """Bake ``names`` and whatever they are built on, in dependency order, exactly what is outdated.

    Each image is decided again under its lock and lease, so a bake that waited
    for another (on this machine or any other) finds that bake's result up to date.
    """
    planner = run.planner()
    first = planner.plan(names, force=force)
    for decision in first:
        if decision.action != plan_mod.UP_TO_DATE:
            run.reporter.line(decision.describe())
    baking = {id(b): b for b in (run.builders[d.image] for d in first if d.action == plan_mod.BAKE)}
    for builder in baking.values():
        builder.prepare(run)  # before anything is recorded: a template that does not parse fails here
    done: list[plan_mod.Decision] = []
    keeper = run.leases or Keeper(run.run_id, run.target.name)
    for initial in first:
        spec = run.project.get(initial.image)
        try:
            decide = functools.partial(planner.decide, spec, parent_action=None, force=spec.name in force)
            with locks.image_lock(run.paths.locks, spec.name, run.run_id, run.reporter, wait=keeper.wait), \
                    keeper.held(run.catalog, run.reporter, decide) as decision:
                if decision.action == plan_mod.UP_TO_DATE:
                    run.reporter.say(decision.describe())
                else:
                    ACTIONS[decision.action](run, spec, decision)
        except KeyboardInterrupt as exc:
            if not getattr(exc, "where", ""):
                exc.where = f"before {spec.name} started (planning, or waiting for its lock or lease)"  # type: ignore[attr-defined]
            # Layers this run finished stay verified: the interrupt line names them.
            exc.verified = tuple(f"{r.image}@{r.version}" for r in run.rows  # type: ignore[attr-defined]
                                 if r.status == "verified")
            raise
        done.append(decision)
    return done
