"""One layer's bake, handed from step to step: what it starts from, what it is, what it has become.

A ``Source`` is what the target says a layer starts from (the foundation, a
Debian AMI, the parent's artifact). An ``Earlier`` is an attempt of the same
bake, found by the target, that got far enough to go on from instead of
starting again. The ``Layer`` collects the outputs of the steps: where the
builder left the image (``built``), its artifacts once stored, the gate's report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import proc
from pipeline.bake.inputs import Inputs
from pipeline.catalog import Artifact, ImageRecord
from pipeline.config import ImageSpec
from pipeline.errors import CommandFailed


@dataclass(frozen=True)
class Git:
    """The project's commit and whether the work tree differs from it."""

    commit: str
    dirty: bool

    @classmethod
    def of(cls, root: Path) -> Git:
        """Read from ``git``; a project outside git is ``unknown`` and dirty."""
        try:
            commit = proc.capture(["git", "-C", str(root), "rev-parse", "HEAD"]).strip()
            dirty = bool(proc.capture(["git", "-C", str(root), "status", "--porcelain"]).strip())
        except CommandFailed:
            return cls(commit="unknown", dirty=True)
        return cls(commit=commit, dirty=dirty)


@dataclass(frozen=True)
class Source:
    """What a layer is built on: ``location`` for the builder, ``label`` for people and /etc/image-release."""

    parent: ImageRecord | None  # None: the target's foundation
    location: str  # a qcow2 path, an AMI id
    label: str  # foundation@…, debian@ami-…, base@2026.…
    place: str = ""  # where the bake happens, when the target has places ("in eu-west-1")


@dataclass(frozen=True)
class Earlier:
    """An earlier attempt of exactly this bake (same key) that a new bake goes on from."""

    version: str
    resume_at: str  # the first step still to run
    note: str  # the progress line that says so
    reason: str  # kept in the version's status history
    built: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    git: Git | None = None  # what it was built from, for a bake the catalog lost


@dataclass
class Layer:
    """State of one layer's bake."""

    spec: ImageSpec
    version: str
    source: Source
    inputs: Inputs
    log_dir: Path
    scratch: Path
    git: Git
    spec_digest: str = ""
    builder: str = ""  # the builder that made (or makes) it: part of its identity
    built: Mapping[str, str] = field(default_factory=dict)  # where the builder left the image, by place
    artifacts: tuple[Artifact, ...] = ()
    report: Path | None = None
    unverified: str = ""  # why nothing could be checked (Kiln's own API-only tests): recorded ``unverified``
    timings: dict[str, float] = field(default_factory=dict)
    phase: str = ""  # where inside the current step (verify: boot, idempotence, specs), for the interrupt line

    @property
    def verdict(self) -> str:
        """The status a bake that ran every step ends in."""
        return "unverified" if self.unverified else "verified"

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.spec.name}@{self.version}"

    def identity(self) -> dict[str, str]:
        """What the image says about itself (/etc/image-release) and specs expect."""
        identity = {"image_name": self.spec.name, "image_version": self.version, "image_parent": self.source.label,
                    "git_commit": self.git.commit, "git_dirty": str(self.git.dirty).lower(),
                    "bake_key": self.inputs.key}
        return {**identity, "builder": self.builder} if self.builder else identity
