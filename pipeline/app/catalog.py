"""The catalog tasks: reading it (list, export, report, resolve, diff, channels, sbom, check, leases), moving and
reconciling channels, restoring it from an export (import).

A channel move is recorded in the catalog first (marked pending on a target
that mirrors channels, in the same transaction), then the target puts the
image's channels where deployers read them (SSM parameters on AWS); the result
carries both. When that fails, the error says which channels the catalog moved
and that the next publish, or ``invoke catalog.reconcile``, finishes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import config, targets, versions
from pipeline.catalog import LATEST, Catalog, ChannelEvent, ImageRecord, Lease, Move, imports
from pipeline.errors import ConfigError, IntegrityError, KilnError
from pipeline.reports import diff, report, sbom
from pipeline.targets.base import Target
from pipeline.targets.local import foundation
from pipeline.targets.local.integrity import CACHE_FILE, Integrity


@contextmanager
def opened(target: str = "local", region: str = "") -> Iterator[tuple[Target, Catalog]]:
    """The target (aws: ``region`` as the build region) and its catalog, which must exist already."""
    place = targets.open_target(target, config.default_paths(), region=region)
    with place.open_catalog(create=False) as cat:
        yield place, cat


def exact_ref(ref: str) -> tuple[str, str]:
    """``NAME@VERSION``; ``NAME@latest`` is not a version here."""
    name, version = versions.parse_ref(ref)
    if version is None:
        raise ConfigError(f"{ref!r} names no version", hint=f"use {ref}@VERSION (see invoke catalog.list)")
    return name, version


def version_of(cat: Catalog, ref: str, purpose: str) -> tuple[str, str]:
    """``NAME@VERSION``, or ``NAME@latest`` as the newest verified version (``purpose`` words the error)."""
    if ref.endswith("@latest"):
        name = ref[: -len("@latest")]
        version = cat.channel(name, LATEST)
        if version is None:
            raise ConfigError(f"{name} has no verified version {purpose}", hint=f"invoke bake {name}")
        return name, version
    return exact_ref(ref)


@dataclass(frozen=True)
class ChannelChange:
    """What a promote, rollback, revoke or restore did: versions changed, channels moved, lines published."""

    changed: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    published: list[str] = field(default_factory=list)


def list_versions(image: str = "", target: str = "local") -> list[ImageRecord]:
    """Every recorded version (of ``image``)."""
    with opened(target) as (_, cat):
        return cat.versions(image or None)


def leases(target: str = "local", region: str = "") -> list[Lease]:
    """Every live bake lease in the target's catalog: who is baking what, on any machine."""
    with opened(target, region) as (_, cat):
        return cat.leases.live()


def export(target: str = "local") -> dict[str, Any]:
    """The whole catalog (schema_version 1)."""
    with opened(target) as (_, cat):
        return cat.export()


def import_export(file: Path, target: str = "local", *, replace: bool = False) -> list[str]:
    """``invoke catalog.import``: the catalog restored from an export file, on purpose (``catalog.imports``)."""
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror})", hint="give the path of an export") from None
    doc = imports.read(text, str(file))
    place = targets.open_target(target, config.default_paths())
    with place.open_catalog(create=True) as cat:
        count = cat.restore_export(doc, replace=replace)
        lines = [f"imported {count} version(s) of {len({i['name'] for i in doc['images']})} image(s) into {cat.path}"]
        if cat.pending():
            lines.append(f"every image is marked publish pending: invoke catalog.reconcile --target {place.name}")
    return lines


def write_report(output: Path, target: str = "local") -> Path:
    """The static HTML page of the catalog, with both SBOMs of every verified version beside it, linked."""
    with opened(target) as (_, cat):
        doc = cat.export()
    links = sbom.write_all(doc, report.page_path(output).parent / "sbom", distro())
    for img in doc["images"]:
        img["sbom"] = {fmt: f"sbom/{name}" for fmt, name in links.get((img["name"], img["version"]), {}).items()}
    return report.write(doc, output)


def distro() -> str:
    """The purl ``distro`` of the images' packages, from the foundation recipe's suite (``debian-12``)."""
    suite = foundation.Recipe.load(config.default_paths().project / "packer" / "foundation").suite
    return sbom.DEBIAN_RELEASES.get(suite, f"debian-{suite}")


def write_sbom(ref: str, fmt: str, output: str = "", target: str = "local") -> str:
    """The SBOM's text, or with ``output`` the file it was written to."""
    text = sbom_of(ref, fmt, target).rstrip("\n")
    if not output:
        return text
    Path(output).write_text(text + "\n")
    return output


def sbom_of(ref: str, fmt: str, target: str = "local") -> str:
    """The SBOM of ``NAME@VERSION`` (or ``NAME@latest``) in ``fmt``: cyclonedx or spdx."""
    if fmt not in sbom.FORMATS:
        raise ConfigError(f"unknown SBOM format {fmt!r}", hint=f"formats: {', '.join(sbom.FORMATS)}")
    with opened(target) as (_, cat):
        name, version = version_of(cat, ref, "to describe")
        if not cat.packages(name, version):
            raise ConfigError(f"{name}@{version} has no recorded package list",
                              hint="only a version that reached verification has one")
        doc = cat.export()
    return sbom.document(doc, name, version, fmt, distro())


def resolve(image: str, *, channel: str = LATEST, target: str = "local", region: str = "") -> str:
    """The artifact id to deploy for ``image`` on ``channel`` (in ``region``)."""
    with opened(target) as (place, cat):
        return cat.resolve(image, channel=channel, target=place.name, region=place.default_region(region)).id


def compare(a: str, b: str) -> diff.Diff:
    """Packages and inputs changed between two versions."""
    with opened() as (_, cat):
        return diff.compare(cat, exact_ref(a), exact_ref(b))


def channels(image: str) -> tuple[dict[str, str | None], dict[str, list[ChannelEvent]]]:
    """Where each channel of ``image`` points, and every move of each named one."""
    with opened() as (_, cat):
        pointers = cat.channels(image)
        return pointers, {ch: cat.channel_history(image, ch) for ch in pointers if ch != LATEST}


def published(place: Target, cat: Catalog, moves: list[Move]) -> list[str]:
    """The target's lines for the images ``moves`` moved; its error, should it fail, names what the catalog
    already moved, and how it will be put right (the move stays marked pending)."""
    names = sorted({m.name for m in moves})
    try:
        return place.publish(cat, names) if names else []
    except KilnError as exc:
        exc.message += f"; the catalog moved ({'; '.join(m.describe() for m in moves)}) but {place.name} was " \
                       "left as it was"
        exc.hint = (f"it is marked pending: the next channel command or bake of {', '.join(names)}, or invoke "
                    f"catalog.reconcile --target {place.name}, puts {place.name} where the catalog says")
        raise


def reconcile(target: str = "local", region: str = "", *, dry_run: bool = False) -> list[str]:
    """Put every image's channels where deployers read them (SSM on aws) as the catalog has them; the lines
    say what differed (``dry_run``: would differ). A target whose deployers read the catalog has nothing to do."""
    with opened(target, region) as (place, cat):
        lines = place.publish(cat, None, dry_run=dry_run)
        if not lines:
            return [f"{place.name}: every channel is where the catalog says"]
        return lines


def promote(ref: str, channel: str, target: str = "local", region: str = "") -> ChannelChange:
    """Point a named channel at a verified version (``NAME@latest``: the newest verified one)."""
    with opened(target, region) as (place, cat):
        name, version = version_of(cat, ref, "to promote")
        move = cat.promote(name, version, channel, check=place.intact)
        return ChannelChange(moves=[move], published=published(place, cat, [move]))


def rollback(image: str, channel: str, target: str = "local", region: str = "") -> ChannelChange:
    """Move a named channel back one step."""
    with opened(target, region) as (place, cat):
        move = cat.rollback(image, channel, check=place.intact)
        return ChannelChange(moves=[move], published=published(place, cat, [move]))


def revoke(ref: str, *, reason: str, cascade: bool, target: str = "local", region: str = "") -> ChannelChange:
    """Revoke a version; an image with children (e.g. base) always cascades."""
    name, version = exact_ref(ref)
    project = config.load(config.default_paths().project)
    with opened(target, region) as (place, cat):
        revoked, moves = cat.revoke(name, version, reason=reason, cascade=cascade or bool(project.children(name)),
                                    check=place.intact)
        return ChannelChange(revoked, moves, published(place, cat, moves))


def restore(ref: str, *, cascade: bool, target: str = "local", region: str = "") -> ChannelChange:
    """Undo a revoke."""
    name, version = exact_ref(ref)
    with opened(target, region) as (place, cat):
        restored, moves = cat.restore(name, version, cascade=cascade, check=place.intact)
        return ChannelChange(restored, moves, published(place, cat, moves))


@dataclass(frozen=True)
class StoredCheck:
    """One stored file against its artifact id."""

    ref: str
    path: str
    problem: str  # empty when it matches


def check_stored() -> list[StoredCheck]:
    """Every stored local file of a version that still has one, hashed in full against its artifact id."""
    paths = config.default_paths()
    checker = Integrity(paths.home / CACHE_FILE)
    found = []
    with opened() as (place, cat):
        records = [(r, place.artifact_of(r)) for r in cat.versions()]
    for rec, art in records:
        if art is None or not art.path or not Path(art.path).exists():
            continue
        try:
            checker.check(Path(art.path), art.id, full=True)
            found.append(StoredCheck(rec.ref, art.path, ""))
        except IntegrityError as exc:
            found.append(StoredCheck(rec.ref, art.path, exc.message))
    return found


def require_intact(checked: list[StoredCheck]) -> None:
    """IntegrityError naming how many stored files changed, if any did."""
    bad = [item for item in checked if item.problem]
    if bad:
        raise IntegrityError(f"{len(bad)} of {len(checked)} stored file(s) changed since they were stored",
                             hint="restore them, or rebake: invoke bake NAME --force")
