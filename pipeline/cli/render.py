"""Presentation for people, at the command-line edge: the tables and lines the tasks print.

The library returns values; only the tasks print, and this is how they show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from pipeline.app.baking import PlanResult
from pipeline.app.catalog import ChannelChange, StoredCheck
from pipeline.app.validate import Finding
from pipeline.bake.plan import Decision
from pipeline.catalog import LATEST, ChannelEvent, ImageRecord, Lease
from pipeline.config import Project
from pipeline.progress import fmt_seconds, grid
from pipeline.reports import diff
from pipeline.targets.local.converge import Converged
from pipeline.targets.local.up import Booted
from pipeline.upkeep import prune


def version_table(records: Sequence[ImageRecord]) -> str:
    """A table of versions (``invoke catalog.list``)."""
    if not records:
        return "no images recorded yet (invoke bake IMAGE)"
    body = []
    for r in records:
        art = r.artifact("local") or (r.artifacts[0] if r.artifacts else None)
        body.append((r.name, r.version, r.status, f"{r.parent[0]}@{r.parent[1]}" if r.parent else "-",
                     r.created_at, art.id[:19] if art else "-"))
    return grid(("IMAGE", "VERSION", "STATUS", "PARENT", "CREATED", "ARTIFACT"), body)


def channel_lines(pointers: dict[str, str | None], history: dict[str, list[ChannelEvent]]) -> list[str]:
    """Where each channel points, each named one followed by its moves (``invoke catalog.channels``)."""
    lines = []
    for channel, version in pointers.items():
        lines.append(f"{channel}: {version or '(none)'}")
        if channel != LATEST:
            lines += [f"  {ev.at} {ev.who} {ev.action}: {ev.from_version or '-'} → {ev.to_version or '-'}"
                      + (f" ({ev.reason})" if ev.reason else "") for ev in history.get(channel, [])]
    return lines


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


def plan(result: PlanResult) -> str:
    """The image graph, then each decision with its reasons (``invoke plan``)."""
    graphed = graph(result.project, {d.image: d for d in result.decisions})
    return "\n".join([graphed, "", *(d.describe() for d in result.decisions)])


def prune_lines(decisions: Sequence[prune.Decision], *, dry_run: bool) -> str:
    """What goes and why each survivor stays."""
    verb = "would delete" if dry_run else "delete"
    lines = [f"{verb} {d.ref}" for d in decisions if d.delete]
    lines += [f"keep {d.ref}: {', '.join(d.reasons)}" for d in decisions if not d.delete]
    if not any(d.delete for d in decisions):
        lines.insert(0, "nothing to prune")
    return "\n".join(lines)


def findings(found: Iterable[Finding]) -> str:
    """One finding a line, then a count."""
    items = list(found)
    if not items:
        return "validate: all good"
    return "\n".join(str(f) for f in items) + f"\nvalidate: {len(items)} finding(s)"


def diff_lines(change: diff.Diff) -> str:
    """Text for people."""
    lines = [f"{change.a} → {change.b}"]
    lines.append(f"packages: {len(change.added)} added, {len(change.removed)} removed, {len(change.changed)} changed")
    lines += [f"  + {k} {v}" for k, v in change.added]
    lines += [f"  - {k} {v}" for k, v in change.removed]
    lines += [f"  ~ {k} {old} → {new}" for k, old, new in change.changed]
    lines.append(f"input files changed: {len(change.files)}")
    lines += [f"  {f}" for f in change.files]
    if change.values:
        lines.append("other inputs changed:")
        lines += [f"  {k}: {old or '(none)'} → {new or '(none)'}" for k, old, new in change.values]
    return "\n".join(lines)


def converged(done: Converged) -> list[str]:
    """What ``invoke converge`` did: the workspace, what changed, the specs it ran and those left for the gate."""
    run = done.played
    lines = [f"converge: {done.image} — workspace made anew ({done.fresh})" if done.fresh
             else f"converge: {done.image} — workspace reused"]
    lines.append(f"converge: {len(run.changed)} task(s) changed in {fmt_seconds(run.seconds)}"
                 + (": " + ", ".join(run.changed) if run.changed else ""))
    if not run.ok:
        lines.append(f"converge: {run.failure()} in the chroot (log {run.log})")
    if done.specs is not None:
        specs = done.specs.result
        lines.append(f"specs: {specs.tests - len(specs.failures)} of {specs.tests} passed in the chroot"
                     + (": failed " + ", ".join(specs.failures) if specs.failures else "") + f" (junit {specs.junit})")
        lines += [f"specs: left for the booted gate: {name}" for name in done.specs.left]
    return lines


def booted(ref: str, machine: Booted) -> str:
    """How to reach an image ``invoke up`` booted."""
    lines = [f"{ref} is up (pid {machine.pid})", f"  ssh: {machine.ssh_command()}"]
    lines += [f"  {label}: 127.0.0.1:{host} → guest port {guest}" for label, (host, guest) in machine.forwards.items()]
    return "\n".join([*lines, f"  stop it with: invoke down {machine.name}"])


def stored_checks(checked: Sequence[StoredCheck]) -> str:
    """One line per stored file: ok, or what changed."""
    return "\n".join(f"MISMATCH {c.ref}: {c.problem}" if c.problem else f"ok       {c.ref}  {c.path}"
                     for c in checked) or "no stored image files"


def lease_table(leases: Sequence[Lease]) -> str:
    """Who is baking what, on every machine sharing the catalog (``invoke catalog.leases``)."""
    if not leases:
        return "no live leases: nothing is being baked"
    until = [datetime.fromtimestamp(lease.expires_at, UTC).strftime("%H:%M:%SZ") for lease in leases]
    return grid(("IMAGE", "KEY", "TARGET", "HOLDER", "HOST", "RUN", "SINCE", "RENEWED UNTIL"),
                [(le.image, le.key.split(":", 1)[-1][:12], le.target, le.actor, le.host, le.run_id, le.since(), u)
                 for le, u in zip(leases, until, strict=True)])


def print_change(change: ChannelChange, verb: str = "") -> None:
    """What a promote, rollback, revoke or restore did: the versions, each channel move, what was published."""
    if verb:
        print(f"{verb}: {', '.join(change.changed)}")
    for line in [*(move.describe() for move in change.moves), *change.published]:
        print(line)
