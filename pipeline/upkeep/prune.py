"""Retention: which old versions to delete, never one that something still needs.

A version survives when it is on any channel (latest included), is the parent
(directly or further up) of a version that survives — a bake in progress
included, before it has stored anything — is among the newest N verified
versions of its image, or is in use (the target says what is: a file a process
holds open, a running QEMU's backing chain, a launch template, an instance, an
SSM parameter).
The target deletes the artifacts of the rest; their catalog records stay,
marked ``deleted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.catalog import Artifact, Catalog, ImageRecord
from pipeline.errors import ConfigError

PRUNABLE = ("verified", "failed", "interrupted", "revoked", "unverified")


@dataclass(frozen=True)
class Decision:
    """Keep or delete one version, with every reason it stays."""

    ref: str
    name: str
    version: str
    delete: bool
    reasons: tuple[str, ...]
    artifacts: tuple[Artifact, ...] = ()


def parse_keep(value: object) -> int:
    """``--keep``: a whole number of at least 1."""
    try:
        keep = int(str(value))
    except ValueError:
        raise ConfigError(f"invalid --keep value {value!r}", hint="give a whole number of at least 1") from None
    if keep < 1:
        raise ConfigError(f"invalid --keep value {value!r}", hint="keep at least 1 verified version per image")
    return keep


def decide(records: Sequence[ImageRecord], channels: Mapping[str, Mapping[str, str | None]], keep: int,
           in_use: Iterable[str] | Mapping[str, str]) -> list[Decision]:
    """Pure retention rule (property-tested): which versions go, and why each survivor stays."""
    using = in_use if isinstance(in_use, dict) else set(in_use)
    reasons: dict[tuple[str, str], list[str]] = {(r.name, r.version): [] for r in records}
    by_name: dict[str, list[ImageRecord]] = {}
    for rec in records:
        by_name.setdefault(rec.name, []).append(rec)
    for name, recs in by_name.items():
        verified = sorted((r for r in recs if r.status == "verified"), key=lambda r: r.key)
        for rec in verified[-keep:]:
            reasons[(name, rec.version)].append(f"among the newest {keep} verified")
        for channel, version in channels.get(name, {}).items():
            if version and (name, version) in reasons:
                reasons[(name, version)].append(f"on channel {channel}")
    for rec in records:
        paths = {a.path for a in rec.artifacts if a.path} | {a.id for a in rec.artifacts}
        hits = sorted(paths & set(using))
        if hits:
            why = sorted({using[h] if isinstance(using, dict) else "by a running VM" for h in hits})
            reasons[(rec.name, rec.version)].append(f"in use ({', '.join(why)})")
        if rec.status not in PRUNABLE:
            reasons[(rec.name, rec.version)].append(f"status {rec.status}")
    # Parents of survivors survive, up the whole chain.
    parent_of = {(r.name, r.version): r.parent for r in records}
    changed = True
    while changed:
        changed = False
        for key, why in list(reasons.items()):
            parent = parent_of.get(key)
            if why and parent and parent in reasons:
                note = f"parent of {key[0]}@{key[1]}"
                if note not in reasons[parent]:
                    reasons[parent].append(note)
                    changed = True
    out = []
    for rec in records:
        why = reasons[(rec.name, rec.version)]
        out.append(Decision(rec.ref, rec.name, rec.version, not why, tuple(why), rec.artifacts))
    return out


def plan(catalog: Catalog, *, keep: int, in_use: Iterable[str] | Mapping[str, str],
         target: str | None = None) -> list[Decision]:
    """Retention decisions for every non-deleted version in the catalog with an artifact on ``target``.

    A version with no artifact yet (a bake in progress, its build not stored) takes part too, so that its
    parent is kept, but gets no decision of its own."""
    live = [r for r in catalog.versions() if r.status != "deleted"]
    records = [r for r in live if not r.artifacts or target is None or any(a.target == target for a in r.artifacts)]
    channels = {name: catalog.channels(name) for name in {r.name for r in records}}
    return [d for d in decide(records, channels, keep, in_use) if d.artifacts or target is None]
