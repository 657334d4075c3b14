"""Kiln's tasks: ``invoke --list`` shows them; each is a thin wrapper over ``pipeline``.

invoke needs every positional argument, so ``--all`` stands in for IMAGE where a
task can work on every image (``invoke bake --all``, ``invoke plan --all``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, task

from pipeline import catalog as catalog_mod
from pipeline import config, render
from pipeline.cli import OptionalPositionalTask, guarded, step_hooks
from pipeline.errors import ConfigError, KilnError


def _images(project: config.Project, image: str, all_: bool) -> list[str]:
    if all_ and image:
        raise ConfigError("give an IMAGE or --all, not both")
    if all_:
        return sorted(project.images)
    project.get(image)
    return [image]


def _catalog(target: str = "local", create: bool = False):
    from pipeline import targets

    return targets.open_catalog(config.default_paths(), targets.check(target), create=create)


def _publish(target: str, cat, moves) -> None:
    from pipeline import targets

    for line in targets.publish_moves(config.default_paths(), target, cat, moves):
        print(line)


def _ref(ref: str) -> tuple[str, str]:
    from pipeline import versions

    name, version = versions.parse_ref(ref)
    if version is None:
        raise ConfigError(f"{ref!r} names no version", hint=f"use {ref}@VERSION (see invoke catalog.list)")
    return name, version


@task(klass=OptionalPositionalTask, positional=["image"], help={
    "image": "image to bake (a key of kiln.toml's [images]); outdated parents are baked first",
    "all": "bake every outdated image, in dependency order",
    "force": "bake IMAGE even when an identical verified one exists (parents only when outdated)",
    "target": "where to bake: local (QEMU, default) or aws (AMIs)",
    "region": "aws: the build region (overrides kiln.toml and KILN_AWS_REGION)",
    "verbose": "stream Packer's, Ansible's and pytest's output live (everything always goes to the logs)",
    "security_updates": "also rebake an up-to-date image whose packages have pending Debian security updates",
})
def bake(c, image, all_=False, force=False, target="local", region="", verbose=False, security_updates=False):
    """Bake IMAGE (or --all) and what it is built on — exactly what is outdated — verify, record."""
    from pipeline import bake as bake_mod
    from pipeline.progress import Reporter, table

    state: dict[str, object] = {}

    def work() -> None:
        paths = config.default_paths()
        project = config.load(paths.project)
        names = _images(project, image, all_)
        from pipeline import targets

        targets.check(target)
        tools = bake_mod.Tools.detect()
        ctx = None
        if target == "aws":
            from pipeline.bake_aws import AwsContext

            ctx = AwsContext.connect(targets.aws_settings(paths, {"region": region}))
        run_id = bake_mod.new_run_id()
        reporter = Reporter(log=paths.logs / run_id / "bake.log")
        with targets.open_catalog(paths, target, settings=ctx.settings if ctx else None) as cat:
            run = bake_mod.Run(paths=paths, project=project, catalog=cat, reporter=reporter, tools=tools,
                               git=bake_mod.Git.of(paths.project), run_id=run_id, verbose=verbose,
                               target=target, aws=ctx, security_updates=security_updates,
                               hooks=step_hooks(os.environ))
            state["run"] = run
            bake_mod.bake(run, names, force=names if force else ())
            if run.rows:
                print(table(run.rows))

    def summary() -> None:
        run = state.get("run")
        if run is not None and run.rows:  # type: ignore[attr-defined]
            print(table(run.rows), file=sys.stderr)  # type: ignore[attr-defined]

    guarded(work, on_error=summary)


@task(klass=OptionalPositionalTask, positional=["image"], help={
    "image": "image to plan (with its parents)", "all": "plan every image",
    "security_updates": "check each image's packages against Debian's indexes (security updates are a reason)",
    "target": "local (default) or aws"})
def plan(c, image, all_=False, security_updates=False, target="local"):
    """Show the image graph and, per image, what a bake would do and why."""
    from pipeline import bake as bake_mod
    from pipeline import plan as plan_mod
    from pipeline.progress import Reporter

    def work() -> None:
        paths = config.default_paths()
        project = config.load(paths.project)
        names = _images(project, image, all_)
        tools = bake_mod.Tools.detect()
        updates = bake_mod.security_checker(project.root, paths.cache, Reporter()) if security_updates else None
        from pipeline import targets

        extra: dict[str, object] = {}
        settings = None
        if targets.check(target) == "aws":
            from pipeline.bake_aws import AwsContext

            ctx = AwsContext.connect(targets.aws_settings(paths))
            settings = ctx.settings
            extra = {"foundation": ctx.source_ami, "region": settings.region}
        with targets.open_catalog(paths, target, settings=settings) as cat:
            planner = plan_mod.Planner(project=project, catalog=cat,
                                       tool_values=tools.values(target), updates=updates or None, **extra)
            decisions = planner.plan(names)
        print(plan_mod.graph(project, {d.image: d for d in decisions}))
        print()
        for d in decisions:
            print(d.describe())

    guarded(work)


@task
def validate(c):
    """Check config, templates (every target), playbooks (syntax, ansible-lint) and specs; findings as file:line."""
    from pipeline import validate as validate_mod
    from pipeline.errors import KilnError

    def work() -> None:
        paths = config.default_paths()
        findings = validate_mod.run(paths.project, work=paths.logs / "validate", cache=paths.cache / "packer")
        print(validate_mod.render(findings))
        if findings:
            raise KilnError(f"validate found {len(findings)} problem(s)", hint="see the lines above")

    guarded(work)


@task(positional=["ref"], help={"ref": "IMAGE or IMAGE@VERSION (default: the latest verified version)"})
def up(c, ref):
    """Boot a local catalog image on a throwaway overlay; print how to get in (invoke down to stop)."""
    from pipeline import up as up_mod
    from pipeline import versions

    def work() -> None:
        paths = config.default_paths()
        name, version = versions.parse_ref(ref)
        project = config.load(paths.project)
        with _catalog() as cat:
            version = version or cat.channel(name, "latest")
            if version is None:
                raise ConfigError(f"{name} has no verified version", hint=f"invoke bake {name}")
            rec = cat.get(name, version)
        art = rec.artifact("local")
        if art is None or not art.path or not Path(art.path).exists():
            raise ConfigError(f"{rec.ref} has no local image file", hint=f"its status is {rec.status}")
        forwards: dict[str, int] = {}
        if name in project.images:
            for spec in project.lineage(name):
                forwards.update(spec.forward)
        booted = up_mod.up(paths.home, name, rec.ref, Path(art.path), forwards)
        print(f"{rec.ref} is up (pid {booted.pid})")
        print(f"  ssh: {booted.ssh_command()}")
        for label, (host, guest) in booted.forwards.items():
            print(f"  {label}: 127.0.0.1:{host} → guest port {guest}")
        print(f"  stop it with: invoke down {name}")

    guarded(work)


@task(positional=["name"], help={"name": "image whose VM to stop"})
def down(c, name):
    """Stop a VM started by invoke up and remove its overlay."""
    from pipeline import up as up_mod

    def work() -> None:
        if up_mod.down(config.default_paths().home, name):
            print(f"{name} is down")
        else:
            print(f"{name} was not up")

    guarded(work)


@task
def images(c):
    """Print the declared images, parents before children, one a line (for scripts and Jenkins)."""
    from pipeline import plan as plan_mod

    def work() -> None:
        project = config.load(config.default_paths().project)
        for spec in plan_mod.order(project, project.images):
            print(spec.name)

    guarded(work)


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


@task(positional=["ref"], help={"ref": "NAME@VERSION (or NAME@latest) to promote",
                                "channel": "channel to move (e.g. prod)",
                                "target": "local (default) or aws (also updates the SSM parameters)"})
def promote(c, ref, channel, target="local"):
    """Point a named channel at a verified version (its history keeps who/when/from/to)."""

    def work() -> None:
        with _catalog(target) as cat:
            if ref.endswith("@latest"):
                name = ref[: -len("@latest")]
                version = cat.channel(name, "latest")
                if version is None:
                    raise ConfigError(f"{name} has no verified version to promote", hint=f"invoke bake {name}")
            else:
                name, version = _ref(ref)
            move = cat.promote(name, version, channel)
            print(move.describe())
            _publish(target, cat, [move])

    guarded(work)


@task(positional=["image"], help={"image": "image name", "channel": "channel to move back",
                                  "target": "local (default) or aws"})
def rollback(c, image, channel, target="local"):
    """Move a channel back one step, to the assignment before the current one."""

    def work() -> None:
        with _catalog(target) as cat:
            move = cat.rollback(image, channel)
            print(move.describe())
            _publish(target, cat, [move])

    guarded(work)


@task(positional=["ref"], help={
    "ref": "NAME@VERSION to revoke", "reason": "why (kept in the history)",
    "cascade": "also revoke every version built on it (always done for an image that has children, e.g. base)",
    "target": "local (default) or aws"})
def revoke(c, ref, reason="", cascade=False, target="local"):
    """Revoke a version: off every channel (they fall back), never a parent again."""

    def work() -> None:
        name, version = _ref(ref)
        project = config.load(config.default_paths().project)
        with _catalog(target) as cat:
            down = cascade or bool(project.children(name))
            revoked, moves = cat.revoke(name, version, reason=reason, cascade=down)
            print(f"revoked: {', '.join(revoked)}")
            for move in moves:
                print(move.describe())
            _publish(target, cat, moves)

    guarded(work)


@task(positional=["ref"], help={"ref": "NAME@VERSION to restore", "cascade": "restore its revoked descendants too",
                                "target": "local (default) or aws"})
def restore(c, ref, cascade=False, target="local"):
    """Undo a revoke."""

    def work() -> None:
        name, version = _ref(ref)
        with _catalog(target) as cat:
            restored, moves = cat.restore(name, version, cascade=cascade)
            print(f"restored: {', '.join(restored)}")
            for move in moves:
                print(move.describe())
            _publish(target, cat, moves)

    guarded(work)


@task(help={"keep": "verified versions to keep per image, newest first (default 3)",
            "dry_run": "print what would go and why each survivor stays; delete nothing",
            "target": "local (image files, default) or aws (AMIs and snapshots in every region)"})
def prune(c, keep="3", dry_run=False, target="local"):
    """Delete old versions' images (files or AMIs); their catalog records stay, marked deleted."""
    from pipeline import prune as prune_mod
    from pipeline import targets

    def work() -> None:
        paths = config.default_paths()
        n = prune_mod.parse_keep(keep)
        targets.check(target)
        if target == "aws":
            from pipeline import aws

            settings = targets.aws_settings(paths)
            account = aws.Account(settings)
            account.identity()
            in_use = prune_mod.in_use_aws(account, settings.regions)
        else:
            in_use = prune_mod.in_use_local()
        with _catalog(target) as cat:
            decisions = prune_mod.plan(cat, keep=n, in_use=in_use, target=target)
            print(prune_mod.render(decisions, dry_run=dry_run))
            if dry_run:
                return
            if target == "aws":
                for line in prune_mod.apply_aws(account, cat, decisions):
                    print(line)
            else:
                prune_mod.apply(cat, decisions, paths.store)

    guarded(work)


@task(help={"target": "aws (default: resources in every region) or local (scratch folders of killed runs)",
            "dry_run": "report only, remove nothing",
            "older_than": "only runs that started at least this long ago (default 3h; e.g. 90m, 0)"})
def janitor(c, target="aws", dry_run=False, older_than="3h"):
    """Find and remove what killed bakes left: AWS resources by run-id tag, or local scratch folders."""
    from pipeline import aws, targets
    from pipeline import janitor as janitor_mod

    def work() -> None:
        age = janitor_mod.parse_age(older_than)
        paths = config.default_paths()
        if targets.check(target) == "local":
            for line in janitor_mod.clean_local(paths.runs, older_than=age, dry_run=dry_run):
                print(line)
            return
        settings = targets.aws_settings(paths)
        account = aws.Account(settings)
        account.identity()
        with targets.open_catalog(paths, target, settings=settings) as cat:
            recorded = {(r.name, r.version): r.status for r in cat.versions()}
        leftovers = janitor_mod.find(account, settings.regions, recorded, older_than=age)
        if not leftovers:
            print(f"janitor: nothing left behind in {', '.join(settings.regions)}")
        elif dry_run:
            for item in leftovers:
                print(f"would remove {item.describe()}")
        else:
            for line in janitor_mod.clean(account, leftovers):
                print(line)

    guarded(work)


@task
def bench(c):
    """Print measured figures: no-op bake vs full bake, resolve with 10,000 versions, step times, sizes."""
    from tools import bench as bench_mod

    def work() -> None:
        paths = config.default_paths()
        print(bench_mod.report(paths, config.load(paths.project)))

    guarded(work)


@task(help={"only": "all (default), interrupts (the bake chain, about 20 minutes) or writers",
            "json": "also write every case's outcome and evidence to this JSON file",
            "keep": "keep the chain's KILN_HOME and KILN_CACHE in this folder (default: a temporary one)"})
def faults(c, only="all", json="", keep=""):
    """Interrupt real bakes of app in every phase (SIGINT, SIGTERM), race catalog writers; print the table."""
    from tools import faults as faults_mod

    def work() -> None:
        if only not in ("all", "interrupts", "writers"):
            raise KilnError(f"--only {only!r} is not a part of the suite", hint="use all, interrupts or writers")

        def say(line: str) -> None:
            print(line, flush=True)

        with faults_mod.workspace(Path(keep).resolve() if keep else None) as folder:
            outcomes = faults_mod.run(folder, only=only, say=say)
        if json:
            faults_mod.write_json(outcomes, Path(json))
        print()
        print(faults_mod.table(outcomes))
        failed = [o for o in outcomes if not o.ok]
        for o in failed:
            print(f"{o.case}: {'; '.join(o.problems + o.details[:5]) or o.resumed}", file=sys.stderr)
        if failed:
            raise KilnError(f"{len(failed)} of {len(outcomes)} fault case(s) failed (details above)")

    guarded(work)


@task(name="list", help={"image": "only this image (default: all)", "target": "local (default) or aws"})
def catalog_list(c, image="", target="local"):
    """List recorded image versions: name, version, status, parent, artifact."""

    def work() -> None:
        with _catalog(target) as cat:
            print(render.version_table(cat.versions(image or None)))

    guarded(work)


@task(name="export", help={"target": "local (default) or aws (the shared S3 catalog when configured)"})
def catalog_export(c, target="local"):
    """Print the whole catalog as JSON (schema_version 1; pipeline/schema/catalog-v1.schema.json)."""

    def work() -> None:
        with _catalog(target) as cat:
            print(catalog_mod.dumps(cat.export()))

    guarded(work)


@task(name="report", help={"output": "where to write the page (a folder or a .html file; default report/)",
                           "target": "local (default) or aws"})
def catalog_report(c, output="report", target="local"):
    """Write the catalog as a static HTML page: images, versions, channels, lineage, package changes, evidence."""
    from pipeline import report as report_mod

    def work() -> None:
        with _catalog(target) as cat:
            path = report_mod.write(cat.export(), Path(output))
        print(path)

    guarded(work)


@task(name="resolve", positional=["image"], help={
    "image": "image name", "channel": "channel (default latest)", "target": "local (default) or aws",
    "region": "AWS region (aws target)"})
def catalog_resolve(c, image, channel="latest", target="local", region=""):
    """Print only the artifact id to deploy for IMAGE on a channel; exit 1 with a reason when there is none."""

    def work() -> None:
        with _catalog(target) as cat:
            if target == "aws" and not region:
                from pipeline import targets

                region_ = targets.aws_settings(config.default_paths()).region
            else:
                region_ = region or None
            print(cat.resolve(image, channel=channel, target=target, region=region_).id)

    guarded(work)


@task(name="diff", positional=["a", "b"], help={"a": "NAME@VERSION (older)", "b": "NAME@VERSION (newer)"})
def catalog_diff(c, a, b):
    """Packages added / removed / changed and input files changed between two versions."""
    from pipeline import diff as diff_mod

    def work() -> None:
        with _catalog() as cat:
            print(diff_mod.render(diff_mod.compare(cat, _ref(a), _ref(b))))

    guarded(work)


@task(name="channels", positional=["image"], help={"image": "image name"})
def catalog_channels(c, image):
    """Show where each channel of IMAGE points, and every move it made (who/when/from/to)."""

    def work() -> None:
        with _catalog() as cat:
            pointers = cat.channels(image)
            history = {ch: cat.channel_history(image, ch) for ch in pointers if ch != catalog_mod.LATEST}
        for line in render.channel_lines(pointers, history):
            print(line)

    guarded(work)


catalog = Collection("catalog")
for _t in (catalog_list, catalog_export, catalog_resolve, catalog_diff, catalog_channels, catalog_report):
    catalog.add_task(_t)

ns = Collection()
for _t in (bake, plan, validate, images, up, down, foundation, promote, rollback, revoke, restore, prune, janitor,
           bench, faults):
    ns.add_task(_t)
ns.add_collection(catalog)
