"""Figures for people: how long each step of the last bakes took and what images cost on disk.

Read from what bakes record (``timings.json`` in each version's log folder, the
foundation cache's ``build-seconds``), so a report never re-runs a bake.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from pipeline import foundation
from pipeline.catalog import Catalog
from pipeline.config import Paths, Project
from pipeline.progress import fmt_seconds, grid


def step_timings(catalog: Catalog, project: Project) -> list[tuple[str, ...]]:
    """Per image, its newest verified version's step durations."""
    rows = []
    for name in sorted(project.images, key=lambda n: len(project.lineage(n))):
        rec = catalog.latest(name)
        if rec is None:
            rows.append((name, "-", "never verified", "", "", ""))
            continue
        timings = json.loads((Path(rec.log_dir) / "timings.json").read_text())
        steps = timings.get("steps", {})
        rows.append((name, rec.version, fmt_seconds(steps.get("build", 0)), fmt_seconds(steps.get("verify", 0)),
                     fmt_seconds(steps.get("store", 0)), fmt_seconds(timings.get("total", 0))))
    return rows


def flattened_size(image: Path) -> int:
    """Bytes a standalone copy of ``image`` (its backing chain merged in) takes."""
    with tempfile.TemporaryDirectory() as tmp:
        flat = Path(tmp) / "flat.qcow2"
        subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(image), str(flat)], check=True,
                       capture_output=True)
        return flat.stat().st_size


def sizes(catalog: Catalog, project: Project) -> list[tuple[str, ...]]:
    """Per image: the stored file's size against a flattened copy."""
    rows = []
    for name in sorted(project.images, key=lambda n: len(project.lineage(n))):
        rec = catalog.latest(name)
        art = rec.artifact("local") if rec else None
        if art is None or art.path is None or not Path(art.path).exists():
            continue
        own = Path(art.path).stat().st_size
        flat = flattened_size(Path(art.path))
        rows.append((name, rec.version if rec else "", f"{own / 2**20:.0f} MiB", f"{flat / 2**20:.0f} MiB",
                     f"{own / flat:.1%}"))
    return rows


def report(paths: Paths, project: Project) -> str:
    """The text ``invoke bench`` prints."""
    recipe = foundation.Recipe.load(project.root / "packer" / "foundation")
    seconds_file = foundation.cached_path(recipe, paths.cache).parent / "build-seconds"
    lines = []
    if seconds_file.exists():
        lines.append(f"foundation: built in {fmt_seconds(float(seconds_file.read_text()))} (cached)")
    else:
        lines.append("foundation: build time not recorded")
    with Catalog.open(paths.catalog, create=False) as cat:
        lines += ["", "cold bake, newest verified version of each image:",
                  grid(("IMAGE", "VERSION", "BUILD", "VERIFY", "STORE", "TOTAL"), step_timings(cat, project)),
                  "", "size on disk (a child stores only its delta on its parent):",
                  grid(("IMAGE", "VERSION", "STORED", "FLATTENED", "RATIO"), sizes(cat, project))]
    return "\n".join(lines)
