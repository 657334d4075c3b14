"""The seams: what a target is, and what a builder inside a target is.

A **target** owns everything that differs between places images go to (a
local qcow2 store, an AWS account): where a layer starts from, how its built
image is stored, the guest it is verified on, an earlier attempt to go on
from, its catalog store, publishing channel moves, what is in use, deleting an
artifact, and what killed runs left behind. A **builder** owns how a layer's
image is produced on that target (Packer's qemu builder locally, amazon-ebs on
AWS; more builders are one module and one registry entry each).

The orchestrator, prune, the janitor and the tasks talk to these protocols
only; none of them ever names a target.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from pipeline.bake.layer import Earlier, Layer, Source
from pipeline.catalog import Artifact, Catalog, ImageRecord
from pipeline.config import ImageSpec, Paths, Project
from pipeline.progress import Reporter
from pipeline.upkeep.janitor import CatalogView
from pipeline.upkeep.prune import Decision
from pipeline.verify.guest import Guest, Unreachable


class Run(Protocol):
    """What targets and builders read of a bake in progress (``pipeline.bake.run.Run`` is the real one)."""

    run_id: str
    project: Project
    paths: Paths
    reporter: Reporter
    catalog: Catalog
    verbose: bool  # stream the tools' output

    @property
    def log_dir(self) -> Path:
        """This run's log folder."""
        ...


@dataclass(frozen=True)
class Leftover:
    """One thing a killed run left behind, found by its run id; ``text`` is how it is reported."""

    place: str  # a region, or "" on this machine
    kind: str
    id: str
    run_id: str
    text: str

    def describe(self) -> str:
        """One report line."""
        return self.text


class Builder(Protocol):
    """How a layer's image is produced. ``name`` is part of the bake key."""

    name: str
    template_sources: tuple[str, ...]  # the sources of packer/image it builds with (invoke validate checks them)
    key_files: tuple[str, ...]  # project files besides the playbook that it reads: bake key inputs

    def tool_values(self) -> dict[str, str]:
        """Check the host tools (ToolMissing, naming every missing one); the versions that enter the bake key."""
        ...

    def prepare(self, run: Run) -> None:
        """Once per run, before the first build and before anything is recorded (templates, plugins)."""
        ...

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        """Build ``layer`` on ``layer.source``; where the image is, by place (``{"file": path}``, region → AMI)."""
        ...

    def evidence(self, log_dir: Path) -> Mapping[str, str]:
        """What a finished build of this key left in its log folder that the gate may use instead of checking
        again (``{"idempotence": log}``): given to a resumed or re-verified layer, whose build is not rerun."""
        ...


class Target(Protocol):
    """A place images are baked for; one module each, registered in ``pipeline.targets``."""

    name: str
    builders: Mapping[str, Callable[[Target], Builder]]  # made with their target; the first is the default
    step_labels: Mapping[str, str]  # how this target names a step in progress lines ("store" → "register")
    default_builder: str  # the project's choice for this target (kiln.toml); "" for the first of ``builders``
    default_jobs: int  # bakes at once without --jobs: 1 where they share this machine's CPU, more where they wait

    @classmethod
    def check_settings(cls, root: Path) -> None:
        """The target's settings in the project's kiln.toml (ConfigError naming the key); environment aside."""
        ...

    def connect(self) -> None:
        """Check access (credentials) before anything is launched or recorded."""
        ...

    def open_catalog(self, *, create: bool = True) -> Catalog:
        """The catalog store this target records in."""
        ...

    def foundation_value(self) -> str:
        """What a root image starts from, as a bake key value (a recipe digest, an AMI id)."""
        ...

    def foundation_change(self, old: str, new: str) -> str:
        """How a change of that value reads in a plan."""
        ...

    def root_label(self, foundation_value: str) -> str:
        """The parent label of a root image built on ``foundation_value``."""
        ...

    def artifact_of(self, record: ImageRecord) -> Artifact | None:
        """A version's artifact here (a child's bake key names its parent's)."""
        ...

    def source(self, run: Run, spec: ImageSpec) -> Source:
        """Where a new layer of ``spec`` starts from (building the foundation first if needed)."""
        ...

    def find_earlier(self, run: Run, spec: ImageSpec, key: str) -> Earlier | None:
        """An interrupted attempt of this very bake (same key) that got far enough to go on from."""
        ...

    def store(self, run: Run, layer: Layer) -> tuple[Artifact, ...]:
        """Keep what the builder made for good (content-addressed file; tagged and shared AMIs)."""
        ...

    def usable(self, record: ImageRecord) -> tuple[Artifact, ...]:
        """A recorded version's artifacts, checked to be still there (re-verification)."""
        ...

    def intact(self, record: ImageRecord) -> None:
        """IntegrityError when ``record``'s artifact no longer has the content its id names (before a
        channel points at it)."""
        ...

    def guest(self, run: Run, layer: Layer) -> AbstractContextManager[Guest | Unreachable]:
        """A machine of ``layer``'s stored image to verify; gone when the block ends, whatever happens."""
        ...

    def publish(self, catalog: Catalog, images: Collection[str] | None = None, *, dry_run: bool = False) -> list[str]:
        """Put the channels of ``images`` (None: every image) where deployers read them as the catalog has them
        now (a reconcile); one line per change, each with what it was; ``dry_run``: what would change."""
        ...

    def default_region(self, region: str) -> str | None:
        """The region a lookup means when none is given (None where there are no regions)."""
        ...

    def in_use(self, catalog: Catalog) -> Mapping[str, str]:
        """Artifacts something still uses (artifact id or path → what), which prune never deletes."""
        ...

    def delete(self, catalog: Catalog, doomed: Sequence[Decision]) -> list[str]:
        """Delete the artifacts of the versions prune let go, and mark them deleted."""
        ...

    def leftovers(self, older_than: timedelta, view: Callable[[], CatalogView]) -> list[Leftover]:
        """What runs older than ``older_than`` left behind (killed before cleaning up); ``view()`` reads the
        catalog, for targets whose leftovers include artifacts (a blind view must make them refuse)."""
        ...

    def clean(self, leftovers: Sequence[Leftover]) -> list[str]:
        """Remove them; one report line each."""
        ...

    def scope(self) -> str:
        """Where the janitor looked, for its "nothing left behind in …" line."""
        ...
