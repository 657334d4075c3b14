"""The aws target: the same layers, templates, playbooks and specs, baked into AMIs.

A root image starts from Debian's official AMI (found by owner and name, and
part of the bake key), a child from its parent's AMI; Packer's amazon-ebs
source builds and copies the AMI (``packer_ebs``); every AMI and snapshot, in
every region, carries the provenance tags (``amis``); verification launches an
instance (``instance``); channels are published as SSM parameters; the catalog
is the shared S3 document when ``[aws] catalog_bucket`` is set, else the local
SQLite file. Retention and the janitor work in every configured region
(``retention``, ``janitor``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import cached_property
from pathlib import Path

from pipeline.bake.layer import Earlier, Layer, Source
from pipeline.bake.run import Run
from pipeline.catalog import Artifact, Catalog, ImageRecord
from pipeline.catalog.s3_store import S3Store
from pipeline.config import ImageSpec, Paths
from pipeline.errors import KilnError
from pipeline.targets.aws import account as aws
from pipeline.targets.aws import amis, instance, janitor, mirror, retention
from pipeline.targets.aws.packer_chroot import PackerChroot
from pipeline.targets.aws.packer_ebs import PackerEbs
from pipeline.targets.aws.settings import AwsSettings, load
from pipeline.targets.base import Builder, Leftover
from pipeline.upkeep.janitor import CatalogView
from pipeline.upkeep.prune import Decision
from pipeline.verify.guest import Guest, Unreachable


class AwsTarget:
    """AMIs in an AWS account (or an emulator of one)."""

    name = "aws"
    # amazon-ebs launches an instance per build; amazon-chroot needs the bake to run on an EC2 host.
    builders: Mapping[str, type[Builder]] = {"packer": PackerEbs, "chroot": PackerChroot}
    step_labels: Mapping[str, str] = {"store": "register"}
    # A bake's own processes used 5 % of its wall time (invoke bench --jobs): the rest is waiting on instances.
    default_jobs = 2

    def __init__(self, paths: Paths, *, region: str = "") -> None:
        self.paths = paths
        self.settings: AwsSettings = load(paths.project, os.environ, {"region": region})
        self.api_only = aws.api_only()
        self.default_builder = self.settings.builder

    @classmethod
    def check_settings(cls, root: Path) -> None:
        """``[aws]`` in kiln.toml, each value checked."""
        load(root, {})

    @cached_property
    def account(self) -> aws.Account:
        """boto3 clients for the configured regions."""
        return aws.Account(self.settings)

    def connect(self) -> None:
        """Check the credentials before anything is launched."""
        self.account.identity()

    def open_catalog(self, *, create: bool = True) -> Catalog:
        """The shared S3 document when a bucket is configured, else the SQLite file (KILN_HOME, or KILN_CATALOG);
        its channel moves are marked pending until SSM mirrors them (``mirror``)."""
        if self.settings.catalog_bucket:
            cat = Catalog(S3Store(self.account.client("s3"), self.settings.catalog_bucket, self.settings.catalog_key,
                                  create=create))
        else:
            cat = Catalog.open(self.paths.catalog, create=create)
        cat.mirrored_by = self.name
        return cat

    @cached_property
    def ssh_cidr(self) -> str:
        """This machine's address as AWS sees it, asked once (``KILN_AWS_SSH_CIDR`` overrides)."""
        return instance.caller_cidr()

    @cached_property
    def source_ami(self) -> str:
        """Debian's newest matching AMI in the build region, looked up once."""
        return str(self.account.find_source_ami()["ImageId"])

    def foundation_value(self) -> str:
        """The source AMI's id."""
        return self.source_ami

    def foundation_change(self, old: str, new: str) -> str:
        """A new Debian AMI."""
        return f"source AMI changed ({old} → {new})"

    def root_label(self, foundation_value: str) -> str:
        """``debian@<ami>``."""
        return f"debian@{foundation_value}"

    def artifact_of(self, record: ImageRecord) -> Artifact | None:
        """The AMI in the build region."""
        return record.artifact(self.name, self.settings.region)

    def source(self, run: Run, spec: ImageSpec) -> Source:
        """Debian's AMI, or the parent's verified AMI in the build region."""
        place = f" in {self.settings.region}"
        if spec.parent is None:
            return Source(None, self.source_ami, self.root_label(self.source_ami), place)
        parent = run.catalog.latest(spec.parent)
        art = self.artifact_of(parent) if parent else None
        if parent is None or art is None:
            raise KilnError(f"{spec.name}: no verified {spec.parent} AMI in {self.settings.region} to build on",
                            hint=f"run: invoke bake {spec.parent} --target aws")
        return Source(parent, art.id, parent.ref, place)

    def find_earlier(self, run: Run, spec: ImageSpec, key: str) -> Earlier | None:
        """AMIs an earlier attempt of this bake registered: tag, share and verify them instead of rebuilding."""
        found = amis.adoptable(self.account, spec.name, key)
        if found is None:
            return None
        version, by_region, git = found
        shown = ", ".join(f"{r}:{a}" for r, a in by_region.items())
        return Earlier(version, "store", f"adopting the AMI a previous attempt registered: {shown}",
                       "a retry adopts the AMI its earlier attempt registered", built=by_region, git=git)

    def layer_tags(self, run: Run, layer: Layer) -> dict[str, str]:
        """Provenance tags of the layer's AMIs and snapshots."""
        return amis.layer_tags(run, layer, self.settings)

    def store(self, run: Run, layer: Layer) -> tuple[Artifact, ...]:
        """Every AMI and snapshot in every region tagged, sharing in place."""
        return amis.register(self.account, layer.built, self.layer_tags(run, layer), layer.ref)

    def usable(self, record: ImageRecord) -> tuple[Artifact, ...]:
        """The recorded AMIs."""
        return tuple(a for a in record.artifacts if a.target == self.name and a.region)

    def intact(self, record: ImageRecord) -> None:
        """An AMI id names an image AWS keeps immutable: nothing to compare."""

    def guest(self, run: Run, layer: Layer) -> AbstractContextManager[Guest | Unreachable]:
        """A test instance of the AMI."""
        return instance.guest(run, layer, self)

    def publish(self, catalog: Catalog, images: Collection[str] | None = None, *, dry_run: bool = False) -> list[str]:
        """``<ssm_prefix>/<image>/<channel>`` in every region, all or nothing, where the catalog says now."""
        return mirror.publish(self.account, catalog, images, dry_run=dry_run)

    def default_region(self, region: str) -> str | None:
        """The build region unless one is given."""
        return region or self.settings.region

    def in_use(self, catalog: Catalog) -> Mapping[str, str]:
        """Launch templates, instances, SSM parameters, and the sharing of the AMIs the catalog lists, in every
        region configured or named by a record."""
        self.connect()
        records = catalog.versions()
        listed = [a for rec in records for a in self.usable(rec)]
        regions = set(self.settings.regions) | {a.region for a in listed if a.region}
        doomable = {a.id for rec in records if rec.status != "deleted" for a in self.usable(rec)}
        return retention.in_use(self.account, sorted(regions), sharing=doomable)

    def delete(self, catalog: Catalog, doomed: Sequence[Decision]) -> list[str]:
        """Deregister the AMIs and delete their snapshots."""
        return retention.delete(self.account, catalog, doomed)

    def leftovers(self, older_than: timedelta, view: Callable[[], CatalogView]) -> list[Leftover]:
        """Resources of killed runs in every configured region (AMIs the catalog keeps, or anything uses, stay)."""
        self.connect()
        return janitor.find(self.account, self.settings.regions, view, older_than=older_than)

    def clean(self, leftovers: Sequence[Leftover]) -> list[str]:
        """Remove them, instances first."""
        return janitor.clean(self.account, leftovers)

    def scope(self) -> str:
        """The configured regions."""
        return ", ".join(self.settings.regions)
