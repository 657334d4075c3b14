"""What a bake would do, and why: the bake key against the catalog.

For every image, in dependency order, the plan compares the inputs a bake would
use now with those of the image's newest verified version:

- **up to date** — a verified version was baked from exactly these inputs;
- **re-verify** — it was, but the specs changed since it was last verified;
- **bake** — never built, inputs changed (the files are named), the parent
  changed (or will be rebaked in this run), or ``--force``.

Planning reads files and the catalog only — no Packer, no VM — so a no-op bake
costs well under a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import foundation, inputs
from pipeline.catalog import Catalog, ImageRecord
from pipeline.config import ImageSpec, Project

UP_TO_DATE, REVERIFY, BAKE = "up to date", "re-verify", "bake"
SPEC_SHARED = ("specs/conftest.py", "specs/pytest.ini")


@dataclass(frozen=True)
class Decision:
    """What a bake does with one image."""

    image: str
    action: str
    reasons: tuple[str, ...]
    current: ImageRecord | None = None
    inputs: inputs.Inputs | None = None
    spec_digest: str = ""
    changed_files: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """One line for people."""
        if self.action == UP_TO_DATE and self.current is not None:
            key = self.current.fingerprint.split(":", 1)[-1][:12]
            notes = f"; {'; '.join(self.reasons)}" if self.reasons else ""
            return f"up to date: {self.image} {self.current.version} (key {key}){notes}"
        return f"{self.action}: {self.image} — {'; '.join(self.reasons)}"


def order(project: Project, names: Iterable[str]) -> list[ImageSpec]:
    """``names`` and all their ancestors, parents before children, each once."""
    seen: dict[str, ImageSpec] = {}
    for name in names:
        for spec in project.lineage(name):
            seen.setdefault(spec.name, spec)
    return sorted(seen.values(), key=lambda s: (len(project.lineage(s.name)), s.name))


def spec_digest(project: Project, name: str) -> str:
    """Digest of the specs an image is verified with (its own and its ancestors')."""
    h = hashlib.sha256()
    root = project.root
    paths: list[Path] = [root / p for p in SPEC_SHARED if (root / p).is_file()]
    for spec in project.lineage(name):
        paths += sorted(p for p in spec.specs.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in paths:
        h.update(f"{path.relative_to(root)} {inputs.file_digest(path)}\n".encode())
    return "sha256:" + h.hexdigest()


def changed(old: Mapping[str, object], new: inputs.Inputs) -> tuple[list[str], list[str]]:
    """Files and values that differ between a recorded bake's inputs and now."""
    old_files = dict(old.get("files", {}) or {})  # type: ignore[call-overload]
    old_values = dict(old.get("values", {}) or {})  # type: ignore[call-overload]
    files = sorted(p for p in set(old_files) | set(new.files) if old_files.get(p) != new.files.get(p))
    values = sorted(k for k in set(old_values) | set(new.values) if old_values.get(k) != new.values.get(k))
    return files, values


def describe_values(values: Sequence[str], old: Mapping[str, object], new: inputs.Inputs) -> list[str]:
    """Readable reasons for changed values."""
    old_values = dict(old.get("values", {}) or {})  # type: ignore[call-overload]
    reasons = []
    for key in values:
        if key == "parent":
            reasons.append("parent changed")
        elif key == "foundation" and str(new.values.get(key, "")).startswith("ami-"):
            reasons.append(f"source AMI changed ({old_values.get(key, '(none)')} → {new.values.get(key)})")
        elif key == "foundation":
            reasons.append("foundation recipe changed")
        else:
            reasons.append(f"{key} {old_values.get(key, '(none)')} → {new.values.get(key, '(none)')}")
    return reasons


@dataclass
class Planner:
    """Computes decisions for a project against a catalog."""

    project: Project
    catalog: Catalog
    tool_values: Mapping[str, str]
    # What root images start from: the foundation recipe digest locally, Debian's AMI id on AWS.
    foundation: Callable[[], str] | None = None
    region: str | None = None
    # Package manifest → pending updates (``pipeline.updates.checker``); None: not checked.
    updates: Callable[[list[dict[str, str]]], list[Any]] | None = None

    def foundation_value(self) -> str:
        """The foundation a root image starts from (a bake key input)."""
        if self.foundation is not None:
            return self.foundation()
        return foundation.Recipe.load(self.project.root / "packer" / "foundation").digest()

    def inputs_for(self, spec: ImageSpec, parent: ImageRecord | None) -> inputs.Inputs:
        """The inputs a bake of ``spec`` on ``parent`` (or the foundation) would have now."""
        values = dict(self.tool_values)
        if spec.parent is None:
            values["foundation"] = self.foundation_value()
        else:
            art = parent.artifact(str(values.get("target", "local")), self.region) if parent else None
            values["parent"] = art.id if art else "(none)"
        return inputs.collect(self.project.root, spec.playbook, values)

    def decide(self, spec: ImageSpec, *, parent_action: str | None, force: bool = False) -> Decision:
        """The decision for one image, given what happens to its parent in this run."""
        latest = self.catalog.latest(spec.name)
        digest = spec_digest(self.project, spec.name)
        if parent_action == BAKE:
            # Its inputs are not final until the parent exists, but every file must already read.
            inputs.playbook_files(self.project.root, spec.playbook)
            reason = f"parent changed ({spec.parent} will be rebaked first)"
            return Decision(spec.name, BAKE, (reason,), latest, None, digest)
        parent = self.catalog.latest(spec.parent) if spec.parent else None
        if spec.parent and parent is None:
            return Decision(spec.name, BAKE, (f"parent {spec.parent} has no verified version",), latest, None, digest)
        now = self.inputs_for(spec, parent)
        same = self.catalog.with_key(spec.name, now.key)
        if force:
            was = f"up to date as {same.version}" if same else "outdated anyway"
            return Decision(spec.name, BAKE, (f"forced with --force ({was})",), latest, now, digest)
        if same is not None:
            check = self.catalog.last_verification(same.name, same.version)
            if check is not None and check["spec_digest"] != digest:
                return Decision(spec.name, REVERIFY, ("specs changed since it was verified",), same, now, digest)
            if self.updates is not None:
                pending = self.updates(self.catalog.packages(same.name, same.version))
                security = [u for u in pending if u.security]
                if security:
                    shown = ", ".join(u.describe() for u in security[:5])
                    more = f" and {len(security) - 5} more" if len(security) > 5 else ""
                    return Decision(spec.name, BAKE, (f"security updates pending: {shown}{more}",), same, now, digest)
                if pending:
                    note = f"{len(pending)} non-security update(s) pending, e.g. {pending[0].describe()}"
                    return Decision(spec.name, UP_TO_DATE, (note,), same, now, digest)
            return Decision(spec.name, UP_TO_DATE, (), same, now, digest)
        if latest is None:
            revoked = [r for r in self.catalog.versions(spec.name) if r.status == "revoked"]
            reason = "never built" if not revoked else f"no good version ({revoked[-1].ref} is revoked)"
            return Decision(spec.name, BAKE, (reason,), None, now, digest)
        files, values = changed(latest.inputs, now)
        reasons = []
        if files:
            shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
            reasons.append(f"inputs changed: {shown}")
        reasons += describe_values(values, latest.inputs, now)
        if spec.parent and latest.parent and parent and latest.parent != (parent.name, parent.version) \
                and "parent changed" not in reasons:
            reasons.append(f"parent changed ({latest.parent[0]}@{latest.parent[1]} → {parent.ref})")
        return Decision(spec.name, BAKE, tuple(reasons or ["inputs changed"]), latest, now, digest, tuple(files))

    def plan(self, names: Iterable[str], *, force: Iterable[str] = ()) -> list[Decision]:
        """Decisions for ``names`` and their ancestors, parents first."""
        forced = set(force)
        decisions: dict[str, Decision] = {}
        for spec in order(self.project, names):
            parent_action = decisions[spec.parent].action if spec.parent else None
            decisions[spec.name] = self.decide(spec, parent_action=parent_action, force=spec.name in forced)
        return list(decisions.values())


def graph(project: Project, decisions: Mapping[str, Decision] | None = None) -> str:
    """The image tree, drawn: ``foundation`` at the root, each child under its parent."""
    lines = ["foundation"]

    def walk(parent: str | None, prefix: str) -> None:
        kids = sorted(n for n, s in project.images.items() if s.parent == parent)
        for i, name in enumerate(kids):
            last = i == len(kids) - 1
            note = f"  [{decisions[name].action}]" if decisions and name in decisions else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name}{note}")
            walk(name, prefix + ("    " if last else "│   "))

    walk(None, "")
    return "\n".join(lines)
