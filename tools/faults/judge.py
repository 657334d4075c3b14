"""What a stopped bake left behind, and whether the next bake resumed where it stopped."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import machine
from pipeline.errors import KilnError
from tools.faults.cases import Case, Outcome
from tools.faults.watch import Watch


def private_tmp(home: Path) -> Path:
    """The TMPDIR of the suite's bakes, next to their home: whatever is in it after a case, that case left.

    Being private, it makes the suite blind to what other jobs on this machine do in /tmp."""
    tmp = home.parent / "tmp"
    if len(str(tmp)) > machine.SHORT_ROOT:
        raise KilnError(f"the fault suite's folder {home.parent} is too long a path for its bakes' TMPDIR",
                        hint=f"use a folder of at most {machine.SHORT_ROOT - 4} characters")
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def mark(home: Path) -> str:
    """The environment entry every process of the suite's bakes carries (see ``Watch.survivors``)."""
    return f"TMPDIR={private_tmp(home)}"


@dataclass(frozen=True)
class Snapshot:
    """This machine's mounts (FUSE exports among them), loop devices and /tmp entries at one moment.

    Compared before and after a case, it catches what a tool left outside the
    places the suite gives its bakes; run the suite alone or in a mount namespace
    of its own (``tools.faults.alone``), since another job's new mounts or /tmp
    entries would count too."""

    entries: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        """The machine now."""
        found = set()
        for line in Path("/proc/mounts").read_text().splitlines():
            _, point, kind = line.split()[:3]
            found.add(f"{'FUSE export' if kind.startswith('fuse') else 'mount'}: {point}")
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            with contextlib.suppress(OSError):
                found.add(f"loop device: {backing.parent.parent.name} on {backing.read_text().strip()}")
        found |= {f"temporary: {p}" for p in Path("/tmp").iterdir()}
        return cls(frozenset(found))

    def new_since(self, before: Snapshot) -> list[str]:
        """What appeared between ``before`` and this one."""
        return sorted(self.entries - before.entries)


def leftovers(home: Path, cache: Path, before: Snapshot) -> list[str]:
    """Temporary disks, folders, mounts and loop devices a stopped bake left behind: in the places it was
    given, and on this machine since ``before``."""
    tmp = private_tmp(home)
    found = [f"scratch: {p}" for p in sorted((home / "runs").glob("*"))]
    found += [f"partial image: {p}" for p in sorted((home / "images").rglob("*.partial"))]
    found += [f"foundation work folder: {p}" for p in sorted((cache / "foundation").glob(".build-*"))]
    found += [f"temporary: {p}" for p in sorted(tmp.iterdir())]
    return found + [entry for entry in Snapshot.take().new_since(before) if ours(entry, (home.parent, cache))]


def ours(entry: str, folders: tuple[Path, ...]) -> bool:
    """Whether a new entry of the machine can be the suite's: every mount and /tmp entry (in its own mount
    namespace, all of them are: ``tools.faults.alone``), and a loop device only when its file is in one of the
    suite's ``folders``, since loop devices are the whole machine's."""
    if not entry.startswith("loop device: "):
        return True
    backing = entry.split(" on ", 1)[-1]
    return any(backing.startswith(f"{folder}/") for folder in folders)


def half_published(home: Path, interrupted: tuple[str, str] | None) -> list[str]:
    """Catalog records that claim more than is true, leases a stopped bake kept, and store files no record owns."""
    from pipeline.catalog import Catalog

    problems = []
    path = home / "catalog.db"
    if not path.exists():
        return []
    with Catalog.open(path) as cat:
        records = cat.versions()
        owned = set()
        for rec in records:
            art = rec.artifact("local")
            if art is not None and art.path:
                owned.add(Path(art.path))
            if rec.status == "building":
                problems.append(f"{rec.ref} is still 'building' with no bake running")
            if rec.status != "verified":
                continue
            if art is None or not art.path or not Path(art.path).exists():
                problems.append(f"{rec.ref} is verified but its image file is missing")
            report = Path(rec.report) if rec.report else None
            if report is None or not report.exists() or json.loads(report.read_text()).get("status") != "verified":
                problems.append(f"{rec.ref} is verified without a passing verification report")
            if interrupted == (rec.name, rec.version):
                problems.append(f"{rec.ref} is verified although its bake was interrupted before recording it")
        for name in {r.name for r in records}:
            for channel, version in cat.channels(name).items():
                if version and cat.get(name, version).status != "verified":
                    problems.append(f"{name} channel {channel} points at {version}, which is not verified")
        problems += [f"lease on {le.subject} still held by {le.holder}, whose bake ended" for le in cat.leases.live()]
    for image in (home / "images").rglob("*.qcow2"):
        if image not in owned:
            problems.append(f"store file no record owns: {image}")
    return problems

VERSION = re.compile(r"\b([a-z][a-z0-9_-]*)@([0-9][0-9A-Za-z.\-]*)")


def version_in(lines: Sequence[str], image: str) -> str:
    """The version of ``image`` that a bake's output last mentions."""
    found = ""
    for line in lines:
        for name, version in VERSION.findall(line):
            if name == image:
                found = version.rstrip(".:;,")
    return found


def judge_resume(case: Case, outcome: Outcome, nxt: Watch, catalog_status: Callable[[str, str], str]) -> str:
    """Did the next bake start again where ``case`` stopped it, without redoing finished work?"""
    image, version = case.image, outcome.version
    if case.phase == "foundation":
        return "yes" if nxt.has_line("foundation: building") else "no: the next bake did not rebuild the foundation"
    if case.phase in ("build", "build idempotence"):
        # A half-built layer is never reused: the next bake starts a new version (and the next case
        # may stop that one before its build is done, so starting is the evidence).
        rebuilt = [ln for ln in nxt.lines if f"{image}@" in ln and ": build …" in ln
                   and f"{image}@{version}:" not in ln]
        if catalog_status(image, version) != "interrupted":
            return f"no: {image}@{version} is {catalog_status(image, version)}, not interrupted"
        return "yes" if rebuilt else "no: the next bake did not start a new version"
    if not nxt.has_line(f"{image}@{version}: resume"):
        return f"no: the next bake did not resume {image}@{version}"
    if nxt.has_line(f"{image}@{version}: build …"):
        return f"no: the next bake rebuilt {image}@{version}"
    return "yes"
