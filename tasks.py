"""Kiln's tasks: ``invoke --list`` shows them; each is a thin wrapper over ``pipeline``."""

from __future__ import annotations

import sys

from invoke import Collection, task

from pipeline import catalog as catalog_mod
from pipeline import config
from pipeline.cli import guarded
from pipeline.errors import ConfigError


@task(positional=["image"], help={
    "image": "image to bake (a key of kiln.toml's [images]); its parents are baked first when needed",
    "target": "where to bake: local (QEMU, default)",
    "verbose": "stream Packer, Ansible and pytest output live (it always goes to the logs)",
})
def bake(c, image, target="local", verbose=False):
    """Bake IMAGE (and any parent without a verified version), verify it, record it."""
    from pipeline import bake as bake_mod
    from pipeline.progress import Reporter, table

    state: dict[str, object] = {}

    def work() -> None:
        paths = config.default_paths()
        project = config.load(paths.project)
        project.get(image)
        if target not in bake_mod.TARGETS:
            raise ConfigError(f"unknown target {target!r}", hint=f"targets: {', '.join(bake_mod.TARGETS)}")
        tools = bake_mod.Tools.detect()
        run_id = bake_mod.new_run_id()
        reporter = Reporter(log=paths.logs / run_id / "bake.log")
        with catalog_mod.Catalog.open(paths.catalog) as cat:
            run = bake_mod.Run(paths=paths, project=project, catalog=cat, reporter=reporter, tools=tools,
                               git=bake_mod.Git.of(paths.project), run_id=run_id, verbose=verbose,
                               target=target)
            state["run"] = run
            reporter.line(f"run {run_id}: bake {image} on {target} (logs {run.log_dir})")
            bake_mod.bake(run, image)
            print(table(run.rows))

    def summary() -> None:
        run = state.get("run")
        if run is not None and run.rows:  # type: ignore[attr-defined]
            print(table(run.rows), file=sys.stderr)  # type: ignore[attr-defined]

    guarded(work, on_error=summary)


@task
def foundation(c):
    """Build (once per recipe) or find the cached Debian foundation every local image starts from."""
    from pipeline import foundation as foundation_mod

    def work() -> None:
        paths = config.default_paths()
        recipe = foundation_mod.Recipe.load(paths.project / "packer" / "foundation")
        log = paths.logs / "foundation.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        path = foundation_mod.ensure(recipe, paths.cache, log, progress=print)
        print(path)

    guarded(work)


@task(name="list")
def catalog_list(c):
    """List every recorded image version: name, version, status, parent, artifact."""

    def work() -> None:
        paths = config.default_paths()
        with catalog_mod.Catalog.open(paths.catalog, create=False) as cat:
            rows = cat.versions()
        print(catalog_mod.render_list(rows))

    guarded(work)


@task(name="export")
def catalog_export(c):
    """Print the whole catalog as JSON (schema_version 1) for deploy tooling."""

    def work() -> None:
        paths = config.default_paths()
        with catalog_mod.Catalog.open(paths.catalog, create=False) as cat:
            print(catalog_mod.dumps(cat.export()))

    guarded(work)


@task
def bench(c):
    """Print measured figures: per-step bake times and stored vs flattened image sizes."""
    from pipeline import bench as bench_mod

    def work() -> None:
        paths = config.default_paths()
        print(bench_mod.report(paths, config.load(paths.project)))

    guarded(work)


catalog = Collection("catalog")
catalog.add_task(catalog_list)
catalog.add_task(catalog_export)

ns = Collection()
ns.add_task(bake)
ns.add_task(foundation)
ns.add_task(bench)
ns.add_collection(catalog)
