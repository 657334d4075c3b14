"""Kiln's tasks: ``invoke --list`` shows them. Each declares its flags, calls ``pipeline.app`` and prints.

invoke needs every positional argument, so ``--all`` stands in for IMAGE where a
task can work on every image (``invoke bake --all``, ``invoke plan --all``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, task

from pipeline.app import baking, machines, upkeep
from pipeline.app import catalog as catalog_app
from pipeline.bake.schedule import write_rows
from pipeline.catalog import dumps
from pipeline.cli import OptionalPositionalTask, guarded, render, step_hooks
from pipeline.cli.render import print_change
from pipeline.errors import KilnError
from pipeline.progress import table
from tools.tasks import bench, docs, faults

REGION_HELP = "aws: the build region (overrides kiln.toml and KILN_AWS_REGION)"


@task(klass=OptionalPositionalTask, positional=["image"], help={
    "image": "image to bake (a key of kiln.toml's [images]), or several as base,app; outdated parents are baked "
             "first",
    "all": "bake every outdated image, in dependency order",
    "force": "bake IMAGE even when an identical verified one exists (parents only when outdated)",
    "target": "where to bake: local (QEMU, default) or aws (AMIs)",
    "region": REGION_HELP,
    "builder": "how layers are built: packer (a VM per build) or chroot (native speed; local: Ansible in a chroot "
               "of the mounted image); default: the image's builder key, else the target's ([local]/[aws] builder)",
    "verbose": "stream Packer's, Ansible's and pytest's output live (everything always goes to the logs)",
    "security_updates": "also rebake an up-to-date image whose packages have pending Debian security updates",
    "no_wait": "when another machine is baking an image (it holds the image's lease in the catalog), exit 75 "
               "naming it instead of waiting for it",
    "jobs": "bake up to N images at once, each as soon as its parents are done (default: 1 locally, 2 on aws, "
            "where bakes mostly wait on instances); their lines are prefixed with the image",
    "fail_fast": "when images bake at once: stop every bake at the first failure (default: siblings go on, "
                 "descendants skip)",
    "rows_json": "write the summary rows as JSON to this file instead of printing the table (for scripts)",
})
def bake(c, image, all_=False, force=False, target="local", region="", builder="", verbose=False,
         security_updates=False, no_wait=False, jobs="", fail_fast=False, rows_json=""):
    """Bake IMAGE (or --all) and what it is built on — exactly what is outdated — verify, record."""
    result = baking.BakeResult()

    def summary(stream=sys.stdout) -> None:
        if rows_json:
            write_rows(Path(rows_json), result.rows)
        elif result.rows:
            print(table(result.rows), file=stream)

    def work() -> None:
        baking.bake(image, all_=all_, force=force, target=target, region=region, builder=builder, verbose=verbose,
                    security_updates=security_updates, hooks=step_hooks(os.environ), result=result, wait=not no_wait,
                    jobs=jobs, fail_fast=fail_fast)
        summary()

    guarded(work, on_error=lambda: summary(sys.stderr))


@task(klass=OptionalPositionalTask, positional=["image"], help={
    "image": "image to plan (with its parents), or several as base,app", "all": "plan every image",
    "security_updates": "check each image's packages against Debian's indexes (security updates are a reason)",
    "target": "local (default) or aws", "builder": "plan as if baking with this builder (see bake --builder)",
    "region": REGION_HELP})
def plan(c, image, all_=False, security_updates=False, target="local", builder="", region=""):
    """Show the image graph and, per image, what a bake would do and why."""

    guarded(lambda: print(render.plan(baking.plan(image, all_=all_, target=target, builder=builder, region=region,
                                                  security_updates=security_updates))))


@task
def validate(c):
    """Check config, templates (every target), playbooks (syntax, ansible-lint) and specs; findings as file:line."""

    def work() -> None:
        findings = upkeep.check_project()
        print(render.findings(findings))
        if findings:
            raise KilnError(f"validate found {len(findings)} problem(s)", hint="see the lines above")

    guarded(work)


@task(positional=["ref"], help={"ref": "IMAGE or IMAGE@VERSION (default: the latest verified version)"})
def up(c, ref):
    """Boot a local catalog image on a throwaway overlay; print how to get in (invoke down to stop)."""
    guarded(lambda: print(render.booted(*machines.boot(ref))))


@task(positional=["name"], help={"name": "image whose VM to stop"})
def down(c, name):
    """Stop a VM started by invoke up and remove its overlay."""
    guarded(lambda: print(f"{name} is down" if machines.stop(name) else f"{name} was not up"))


@task(positional=["image"], help={
    "image": "image whose playbook to apply to its chroot workspace (a child of its parent's latest verified version)",
    "reset": "start the workspace fresh", "specs": "also run the specs that need no boot (the rest are named)",
    "verbose": "stream Ansible's and pytest's output"})
def converge(c, image, reset=False, specs=False, verbose=False):
    """Try a playbook edit in seconds: apply it in a chroot workspace, print what changed; nothing is recorded."""

    def work() -> None:
        done = baking.converge(image, reset=reset, specs=specs, verbose=verbose)
        for line in render.converged(done):
            print(line)
        if not done.played.ok or (done.specs and not done.specs.result.ok):
            raise KilnError(f"converge of {image} did not pass", hint="see the lines above")

    guarded(work)


@task
def images(c):
    """Print the declared images, parents before children, one a line (for scripts and Jenkins)."""
    guarded(lambda: print("\n".join(baking.images())))


@task
def foundation(c):
    """Build (once per recipe) or find the cached Debian foundation every local image starts from."""
    guarded(lambda: print(baking.build_foundation(progress=print)))


@task(positional=["name"], help={"name": "the new image's name", "parent": "image it is built on (default base; "
                                "foundation for a root image)", "forward": "ports to reach during verification, "
                                "e.g. http=80"})
def new(c, name, parent="base", forward=""):
    """Scaffold an image: its kiln.toml table (appended), a playbook with an example task, a spec that can fail."""
    guarded(lambda: print("\n".join([*(f"wrote {p}" for p in upkeep.scaffold(name, parent, forward)),
                                      f"next: invoke validate, then invoke bake {name}"])))


@task(positional=["ref"], help={"ref": "NAME@VERSION (or NAME@latest) to promote",
                                "channel": "channel to move (e.g. prod)",
                                "target": "local (default) or aws (also updates the SSM parameters)",
                                "region": REGION_HELP})
def promote(c, ref, channel, target="local", region=""):
    """Point a named channel at a verified version (its history keeps who/when/from/to)."""
    guarded(lambda: print_change(catalog_app.promote(ref, channel, target, region)))


@task(positional=["image"], help={"image": "image name", "channel": "channel to move back",
                                  "target": "local (default) or aws", "region": REGION_HELP})
def rollback(c, image, channel, target="local", region=""):
    """Move a channel back one step, to the assignment before the current one."""
    guarded(lambda: print_change(catalog_app.rollback(image, channel, target, region)))


@task(positional=["ref"], help={
    "ref": "NAME@VERSION to revoke", "reason": "why (kept in the history)",
    "cascade": "also revoke every version built on it (always done for an image that has children, e.g. base)",
    "target": "local (default) or aws", "region": REGION_HELP})
def revoke(c, ref, reason="", cascade=False, target="local", region=""):
    """Revoke a version: off every channel (they fall back), never a parent again."""
    guarded(lambda: print_change(catalog_app.revoke(ref, reason=reason, cascade=cascade, target=target,
                                                     region=region), "revoked"))


@task(positional=["ref"], help={"ref": "NAME@VERSION to restore", "cascade": "restore its revoked descendants too",
                                "target": "local (default) or aws", "region": REGION_HELP})
def restore(c, ref, cascade=False, target="local", region=""):
    """Undo a revoke."""
    guarded(lambda: print_change(catalog_app.restore(ref, cascade=cascade, target=target, region=region),
                                  "restored"))


@task(help={"keep": "verified versions to keep per image, newest first (default 3)",
            "dry_run": "print what would go and why each survivor stays; delete nothing",
            "target": "local (image files, default) or aws (AMIs and snapshots in every region)",
            "region": REGION_HELP})
def prune(c, keep="3", dry_run=False, target="local", region=""):
    """Delete old versions' images (files or AMIs); their catalog records stay, marked deleted."""

    def work() -> None:
        result = upkeep.prune_images(keep=keep, dry_run=dry_run, target=target, region=region)
        print(render.prune_lines(result.decisions, dry_run=dry_run))
        for line in result.deleted:
            print(line)

    guarded(work)


@task(help={"target": "aws (default: resources in every region) or local (scratch folders of killed runs, "
                      "half-stored images, abandoned foundation builds)",
            "dry_run": "report only, remove and mark nothing",
            "older_than": "only runs that started at least this long ago (default 3h; e.g. 90m, 0); a run holding "
                          "a lease or image lock is alive and never touched",
            "region": REGION_HELP})
def janitor(c, target="aws", dry_run=False, older_than="3h", region=""):
    """Find and remove what killed bakes left (AWS resources by run-id tag, or local scratch and half-stored files);
    mark the building records no live bake holds interrupted."""
    guarded(lambda: print("\n".join(upkeep.sweep(target=target, dry_run=dry_run, older_than=older_than,
                                                 region=region).lines)))


@task(name="list", help={"image": "only this image (default: all)", "target": "local (default) or aws"})
def catalog_list(c, image="", target="local"):
    """List recorded image versions: name, version, status, parent, artifact."""
    guarded(lambda: print(render.version_table(catalog_app.list_versions(image, target))))


@task(name="export", help={"target": "local (default) or aws (the shared S3 catalog when configured)"})
def catalog_export(c, target="local"):
    """Print the whole catalog as JSON (schema_version 1; pipeline/schema/catalog-v1.schema.json)."""
    guarded(lambda: print(dumps(catalog_app.export(target))))


@task(name="import", positional=["file"], help={
    "file": "an export (invoke catalog.export > FILE), checked against the schema first",
    "target": "local (default) or aws (the shared S3 catalog when configured)",
    "replace": "replace a catalog that holds versions (refused without it)"})
def catalog_import(c, file, target="local", replace=False):
    """Restore the catalog from an export: versions, artifacts, histories and channels, as the file has them."""
    guarded(lambda: print("\n".join(catalog_app.import_export(Path(file), target, replace=replace))))


@task(name="report", help={"output": "where to write the page (a folder or a .html file; default report/); both "
                                     "SBOMs of every verified version go to sbom/ beside it",
                           "target": "local (default) or aws"})
def catalog_report(c, output="report", target="local"):
    """Write the catalog as a static HTML page: images, versions, channels, lineage, package changes, SBOMs."""
    guarded(lambda: print(catalog_app.write_report(Path(output), target)))


@task(name="resolve", positional=["image"], help={
    "image": "image name", "channel": "channel (default latest)", "target": "local (default) or aws",
    "region": "AWS region (aws target)"})
def catalog_resolve(c, image, channel="latest", target="local", region=""):
    """Print only the artifact id to deploy for IMAGE on a channel; exit 1 with a reason when there is none."""
    guarded(lambda: print(catalog_app.resolve(image, channel=channel, target=target, region=region)))


@task(name="diff", positional=["a", "b"], help={"a": "NAME@VERSION (older)", "b": "NAME@VERSION (newer)"})
def catalog_diff(c, a, b):
    """Packages added / removed / changed and input files changed between two versions."""
    guarded(lambda: print(render.diff_lines(catalog_app.compare(a, b))))


@task(name="channels", positional=["image"], help={"image": "image name"})
def catalog_channels(c, image):
    """Show where each channel of IMAGE points, and every move it made (who/when/from/to)."""
    guarded(lambda: print("\n".join(render.channel_lines(*catalog_app.channels(image)))))


@task(name="sbom", positional=["ref"], help={
    "ref": "NAME@VERSION or NAME@latest", "format": "cyclonedx (CycloneDX 1.6 JSON, default) or spdx (SPDX 2.3 JSON)",
    "output": "write to this file instead of standard output", "target": "local (default) or aws"})
def catalog_sbom(c, ref, format="cyclonedx", output="", target="local"):  # noqa: A002 — the flag's name
    """Print (or write) a version's SBOM: its recorded packages with purls, the image as subject, its parent."""

    guarded(lambda: print(catalog_app.write_sbom(ref, format, output, target)))


@task(name="leases", help={"target": "local (default) or aws (the shared S3 catalog when configured)",
                           "region": REGION_HELP})
def catalog_leases(c, target="local", region=""):
    """List the live bake leases: which machine is baking which image (bake key, target), since when, until when."""
    guarded(lambda: print(render.lease_table(catalog_app.leases(target, region))))


@task(name="check")
def catalog_check(c):
    """Hash every stored image file in full against its artifact id: one line each, ok or MISMATCH (exit 1 if any)."""

    def work() -> None:
        checked = catalog_app.check_stored()
        print(render.stored_checks(checked))
        catalog_app.require_intact(checked)

    guarded(work)


@task(name="reconcile", help={"target": "aws (SSM parameters in every region) or local (default: deployers read "
                                        "the catalog itself, nothing to do)",
                              "dry_run": "print the differences only; change nothing", "region": REGION_HELP})
def catalog_reconcile(c, target="local", dry_run=False, region=""):
    """Put every channel where deployers read it (SSM) as the catalog says; print each difference and what it was."""
    guarded(lambda: print("\n".join(catalog_app.reconcile(target, region, dry_run=dry_run))))


catalog = Collection("catalog", catalog_list, catalog_export, catalog_import, catalog_resolve, catalog_diff,
                     catalog_channels, catalog_report, catalog_sbom, catalog_check, catalog_leases, catalog_reconcile)
ns = Collection(bake, plan, converge, validate, new, images, up, down, foundation, promote, rollback, revoke, restore,
                prune, janitor, bench, faults, docs, catalog)
