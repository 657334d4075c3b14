"""Retention: delete old versions' image files, never one that something still needs.

A version survives when it is on any channel (latest included), is the parent
(directly or further up) of a version that survives, is among the newest N
verified versions of its image, or is in use — a running QEMU has it somewhere
in its disk's backing chain (``invoke up``, a verification, a bake on top of it).
Deleted versions keep their catalog record, marked ``deleted``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.catalog import Catalog, ImageRecord
from pipeline.errors import ConfigError

PRUNABLE = ("verified", "failed", "interrupted", "revoked")


@dataclass(frozen=True)
class Decision:
    """Keep or delete one version, with every reason it stays."""

    ref: str
    name: str
    version: str
    delete: bool
    reasons: tuple[str, ...]
    path: str | None


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
        art = rec.artifact("local")
        out.append(Decision(rec.ref, rec.name, rec.version, not why, tuple(why), art.path if art else None))
    return out


def plan(catalog: Catalog, *, keep: int, in_use: Iterable[str] | Mapping[str, str],
         target: str | None = None) -> list[Decision]:
    """Retention decisions for every non-deleted version in the catalog (with an artifact on ``target``)."""
    records = [r for r in catalog.versions() if r.status != "deleted"
               and (target is None or any(a.target == target for a in r.artifacts))]
    channels = {name: catalog.channels(name) for name in {r.name for r in records}}
    return decide(records, channels, keep, in_use)


def render(decisions: Sequence[Decision], *, dry_run: bool) -> str:
    """What goes and why each survivor stays."""
    verb = "would delete" if dry_run else "delete"
    lines = [f"{verb} {d.ref}" for d in decisions if d.delete]
    lines += [f"keep {d.ref}: {', '.join(d.reasons)}" for d in decisions if not d.delete]
    if not any(d.delete for d in decisions):
        lines.insert(0, "nothing to prune")
    return "\n".join(lines)


def apply(catalog: Catalog, decisions: Sequence[Decision], store: Path) -> None:
    """Delete the image files of the versions that go; mark them deleted."""
    for d in decisions:
        if not d.delete:
            continue
        if d.path:
            path = Path(d.path)
            folder = path.parent
            if folder.parent == store and folder.name.startswith("sha256-"):
                shutil.rmtree(folder, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        catalog.mark_deleted(d.name, d.version, "pruned")


def _qemu_disks() -> list[str]:
    disks = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or b"qemu-system" not in argv[0]:
            continue
        for arg in argv:
            for part in arg.decode(errors="replace").split(","):
                if part.startswith("file="):
                    disks.append(part[5:])
    return disks


def in_use_local() -> set[str]:
    """Every image file in the backing chain of a running QEMU's disks."""
    used: set[str] = set()
    for disk in _qemu_disks():
        try:
            out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", disk],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        except (subprocess.SubprocessError, OSError):
            continue
        for layer in json.loads(out):
            used.add(str(layer.get("filename")))
            if layer.get("full-backing-filename"):
                used.add(str(layer["full-backing-filename"]))
    return used


def in_use_aws(account: Any, regions: Iterable[str]) -> dict[str, str]:
    """AMIs something still points at: launch template versions, running or stopped instances, SSM parameters."""
    used: dict[str, str] = {}
    for region in regions:
        ec2 = account.client("ec2", region)
        for page in ec2.get_paginator("describe_launch_templates").paginate():
            for lt in page["LaunchTemplates"]:
                for version in ec2.describe_launch_template_versions(
                        LaunchTemplateId=lt["LaunchTemplateId"])["LaunchTemplateVersions"]:
                    ami = version.get("LaunchTemplateData", {}).get("ImageId")
                    if ami:
                        used[ami] = f"launch template {lt['LaunchTemplateName']} v{version['VersionNumber']}"
        for res in ec2.describe_instances(Filters=[{"Name": "instance-state-name",
                                                    "Values": ["pending", "running", "stopping", "stopped"]}]
                                          )["Reservations"]:
            for inst in res["Instances"]:
                used[inst["ImageId"]] = f"instance {inst['InstanceId']} ({inst['State']['Name']})"
        ssm = account.client("ssm", region)
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True):
            for param in page["Parameters"]:
                if str(param.get("Value", "")).startswith("ami-"):
                    used.setdefault(param["Value"], f"SSM parameter {param['Name']}")
    return used


def apply_aws(account: Any, catalog: Any, decisions: Sequence[Decision]) -> list[str]:
    """Deregister the AMIs of the versions that go, in every region, with their snapshots; mark them deleted."""
    from pipeline import aws

    lines = []
    for d in decisions:
        if not d.delete:
            continue
        rec = catalog.get(d.name, d.version)
        for art in rec.artifacts:
            if art.target != "aws" or not art.region:
                continue
            ec2 = account.client("ec2", art.region)
            images = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [art.id]}])["Images"]
            snapshots = aws.snapshots_of(images[0]) if images else []
            if images:
                ec2.deregister_image(ImageId=art.id)
            for snap in snapshots:
                ec2.delete_snapshot(SnapshotId=snap)
            lines.append(f"deregistered {art.region} {art.id} and {len(snapshots)} snapshot(s) of {d.ref}")
        catalog.mark_deleted(d.name, d.version, "pruned")
    return lines
