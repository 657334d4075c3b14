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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.bake import inputs
from pipeline.catalog import Catalog, ImageRecord
from pipeline.config import ImageSpec, Project
from pipeline.targets.base import Target

UP_TO_DATE, REVERIFY, BAKE = "up to date", "re-verify", "bake"


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

    @property
    def forced(self) -> bool:
        """Baked because of ``--force`` (so an earlier attempt is not resumed)."""
        return bool(self.reasons) and self.reasons[0].startswith("forced")


@dataclass
class Planner:
    """Computes decisions for a project against a catalog; the target says what root images start from
    and which artifact of a parent a child's key names."""

    project: Project
    catalog: Catalog
    target: Target
    # The tool part of the bake key: the same for every image, or each image's (its builder differs).
    tool_values: Mapping[str, str] | Callable[[ImageSpec], Mapping[str, str]]
    # Package manifest → pending updates (``pipeline.upkeep.updates.checker``); None: not checked.
    updates: Callable[[list[dict[str, str]]], list[Any]] | None = None
    # The files besides its playbook that each image's builder reads (a bake key input).
    templates: Callable[[ImageSpec], Sequence[str]] = lambda _spec: inputs.TEMPLATE_FILES

    def inputs_for(self, spec: ImageSpec, parent: ImageRecord | None) -> inputs.Inputs:
        """The inputs a bake of ``spec`` on ``parent`` (or the foundation) would have now."""
        values = dict(self.tool_values(spec) if callable(self.tool_values) else self.tool_values)
        if spec.parent is None:
            values["foundation"] = self.target.foundation_value()
        else:
            art = self.target.artifact_of(parent) if parent else None
            values["parent"] = art.id if art else "(none)"
        return inputs.collect(self.project.root, spec.playbook, values, self.templates(spec))

    def describe_values(self, values: Sequence[str], old: Mapping[str, object], new: inputs.Inputs) -> list[str]:
        """Readable reasons for changed values."""
        old_values = dict(old.get("values", {}) or {})  # type: ignore[call-overload]
        reasons = []
        for key in values:
            before, after = str(old_values.get(key, "(none)")), str(new.values.get(key, "(none)"))
            if key == "parent":
                reasons.append("parent changed")
            elif key == "foundation":
                reasons.append(self.target.foundation_change(before, after))
            else:
                reasons.append(f"{key} {before} → {after}")
        return reasons

    def decide(self, spec: ImageSpec, *, parent_action: str | None, force: bool = False) -> Decision:
        """The decision for one image, given what happens to its parent in this run."""
        latest = self.catalog.latest(spec.name)
        digest = inputs.spec_digest(self.project.root, self.project.lineage(spec.name))
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
            return self.same_key(spec, same, now, digest)
        if latest is None:
            return Decision(spec.name, BAKE, (self.no_good_version(spec.name),), None, now, digest)
        return self.outdated(spec, latest, parent, now, digest)

    def same_key(self, spec: ImageSpec, same: ImageRecord, now: inputs.Inputs, digest: str) -> Decision:
        """A verified version has this very key: up to date, unless its specs or its packages say otherwise."""
        check = self.catalog.last_verification(same.name, same.version)
        if check is not None and check["spec_digest"] != digest:
            return Decision(spec.name, REVERIFY, ("specs changed since it was verified",), same, now, digest)
        pending = self.updates(self.catalog.packages(same.name, same.version)) if self.updates else []
        security = [u for u in pending if u.security]
        if security:
            shown = ", ".join(u.describe() for u in security[:5])
            more = f" and {len(security) - 5} more" if len(security) > 5 else ""
            return Decision(spec.name, BAKE, (f"security updates pending: {shown}{more}",), same, now, digest)
        notes = (f"{len(pending)} non-security update(s) pending, e.g. {pending[0].describe()}",) if pending else ()
        return Decision(spec.name, UP_TO_DATE, notes, same, now, digest)

    def outdated(self, spec: ImageSpec, latest: ImageRecord, parent: ImageRecord | None, now: inputs.Inputs,
                 digest: str) -> Decision:
        """Inputs changed since the newest verified version: say which."""
        files, values = now.changed_since(latest.inputs)
        reasons = []
        if files:
            shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
            reasons.append(f"inputs changed: {shown}")
        reasons += self.describe_values(values, latest.inputs, now)
        if spec.parent and latest.parent and parent and latest.parent != (parent.name, parent.version) \
                and "parent changed" not in reasons:
            reasons.append(f"parent changed ({latest.parent[0]}@{latest.parent[1]} → {parent.ref})")
        return Decision(spec.name, BAKE, tuple(reasons or ["inputs changed"]), latest, now, digest, tuple(files))

    def no_good_version(self, name: str) -> str:
        """Why there is nothing to reuse, as the history says: never built, or what became of the newest."""
        recorded = self.catalog.versions(name)
        revoked = [r for r in recorded if r.status == "revoked"]
        if revoked:
            return f"no good version ({revoked[-1].ref} is revoked)"
        return f"no verified version ({recorded[-1].ref} is {recorded[-1].status})" if recorded else "never built"

    def plan(self, names: Iterable[str], *, force: Iterable[str] = ()) -> list[Decision]:
        """Decisions for ``names`` and their ancestors, parents first."""
        forced = set(force)
        decisions: dict[str, Decision] = {}
        for spec in self.project.order(names):
            parent_action = decisions[spec.parent].action if spec.parent else None
            decisions[spec.name] = self.decide(spec, parent_action=parent_action, force=spec.name in forced)
        return list(decisions.values())
