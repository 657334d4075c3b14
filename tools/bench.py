"""Figures for people: how long each step of the last bakes took and what images cost on disk.

Read from what bakes record (``timings.json`` in each version's log folder, the
foundation cache's ``build-seconds``), so a report never re-runs a bake.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import ROOT
from pipeline.app import baking
from pipeline.bake.plan import UP_TO_DATE
from pipeline.catalog import Catalog, Lease
from pipeline.config import Paths, Project, default_paths, load
from pipeline.progress import fmt_seconds, grid
from pipeline.targets.local import foundation
from pipeline.targets.local.integrity import CACHE_FILE, Integrity


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


KILN = ROOT  # where tasks.py is: invoke looks for it in its working folder


def _invoke(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``invoke ARGS`` as a terminal runs it, timed; the project is the one ``env``'s KILN_PROJECT names."""
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).parent / "invoke"), *args], cwd=KILN, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    return time.perf_counter() - started, done


def outdated(paths: Paths, image: str) -> list[str]:
    """What a bake of ``image`` would do that is not a no-op (empty when all is up to date): the plan a bake
    makes, with the builder it would choose (part of the key)."""
    if paths != default_paths():
        raise ValueError("the bench measures the KILN_HOME and project of its environment")
    return [d.describe() for d in baking.plan(image).decisions if d.action != UP_TO_DATE]


def noop_bake(paths: Paths, image: str, repeat: int = 3) -> tuple[float | None, str]:
    """Median wall time of ``invoke bake IMAGE`` when nothing changed (None if it would not be a no-op).

    Never starts a real bake: when the plan says something is outdated, nothing is timed.
    """
    pending = outdated(paths, image)
    if pending:
        return None, f"{pending[0]} (run invoke bake {image} first)"
    env = {**os.environ, "KILN_HOME": str(paths.home), "KILN_CACHE": str(paths.cache),
           "KILN_PROJECT": str(paths.project)}
    times = []
    for _ in range(repeat):
        seconds, done = _invoke("bake", image, env=env)
        lines = (done.stdout + done.stderr).strip().splitlines()
        if done.returncode != 0 or not lines or not all(ln.startswith("up to date:") for ln in lines):
            return None, lines[-1] if lines else f"exit {done.returncode}"
        times.append(seconds)
    return statistics.median(times), lines[-1]


def full_bake(catalog: Catalog, image: str) -> tuple[float | None, str]:
    """Seconds of the newest verified version's bake (build + store + verify), from its timings."""
    rec = catalog.latest(image)
    if rec is None:
        return None, "never verified"
    timings = Path(rec.log_dir) / "timings.json"
    if not timings.exists():
        return None, f"{rec.ref}: no timings recorded"
    doc = json.loads(timings.read_text())
    steps = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in doc.get("steps", {}).items())
    return float(doc["total"]), f"{rec.ref}: {steps}"


def resolve_at_scale(project: Path, count: int = 10_000, repeat: int = 5) -> tuple[float, float]:
    """``resolve`` on a catalog of ``count`` versions: (API seconds, CLI seconds), medians."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        rows = []
        for i in range(count):
            day, rest = divmod(i, 86400)
            version = f"2026.{1 + day // 28:02d}{1 + day % 28:02d}.{rest // 3600:02d}{rest // 60 % 60:02d}" \
                      f"{rest % 60:02d}"
            rows.append((i + 1, version))

        def fill(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO images (id, name, version, status, fingerprint, git_commit, git_dirty,"
                           " created_at, run_id, log_dir) VALUES (?, 'app', ?, 'verified', 'sha256:x', 'c', 0,"
                           " '2026-01-01T00:00:00Z', 'bench', '/l')", rows)
            db.executemany("INSERT INTO artifacts VALUES (?, 'local', NULL, ?, '/s')",
                           [(i, f"sha256:{i:064x}") for i, _ in rows])

        with Catalog.open(home / "catalog.db") as cat:
            cat.store.write(fill)
            cat.promote("app", rows[count // 2][1], "prod")
            api = []
            for _ in range(repeat):
                started = time.perf_counter()
                cat.resolve("app", channel="prod")
                api.append(time.perf_counter() - started)
        env = {k: v for k, v in os.environ.items() if k != "KILN_CATALOG"} | {  # this catalog
            "KILN_HOME": str(home), "KILN_PROJECT": str(project)}
        cli = []
        for _ in range(repeat):
            seconds, done = _invoke("catalog.resolve", "app", "--channel", "prod", env=env)
            if done.returncode != 0:
                raise RuntimeError(done.stderr)
            cli.append(seconds)
    return statistics.median(api), statistics.median(cli)


def headline(paths: Paths, image: str = "app") -> list[str]:
    """No-op bake against the last full bake, and resolve at scale, side by side."""
    with Catalog.open(paths.catalog, create=False) as cat:
        full, full_note = full_bake(cat, image)
    noop, noop_note = noop_bake(paths, image)
    api, cli = resolve_at_scale(paths.project)
    lines = [f"no-op `invoke bake {image}`:      "
             + (f"{noop:.2f} s (median of 3; {noop_note})" if noop is not None else f"not a no-op: {noop_note}"),
             f"last full {image} bake:            "
             + (f"{full:.1f} s ({full_note})" if full is not None else full_note)]
    if noop is not None and full:
        lines.append(f"ratio no-op / full:            {noop / full:.2%} (target: at most 1 %)")
    lines.append(f"catalog.resolve, 10,000 versions: {api * 1e6:.0f} µs in Python (pipeline.catalog), "
                 f"{cli:.2f} s as `invoke catalog.resolve`")
    return lines


def integrity_cost(paths: Paths, image: str = "base") -> str:
    """What checking ``image``'s stored file against its artifact id costs: hashed in full, and remembered."""
    with Catalog.open(paths.catalog, create=False) as cat:
        rec = cat.latest(image)
    art = rec.artifact("local") if rec else None
    if art is None or not art.path or not Path(art.path).exists():
        return f"integrity check: no stored {image} to measure"
    checker = Integrity(paths.home / CACHE_FILE)
    started = time.perf_counter()
    checker.check(Path(art.path), art.id, full=True)
    full = time.perf_counter() - started
    cached = statistics.median(_timed(lambda: checker.check(Path(art.path), art.id)) for _ in range(20))
    size = Path(art.path).stat().st_size / 2**20
    return (f"integrity check of {image} ({size:.0f} MiB): {full:.2f} s hashed in full, {cached * 1e3:.2f} ms "
            f"remembered (median of 20)")


def lease_cost(paths: Paths) -> str:
    """What a bake lease costs on a SQLite catalog in KILN_HOME's filesystem: one claim and its release."""
    paths.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paths.home) as tmp, Catalog.open(Path(tmp) / "catalog.db") as cat:
        want = Lease(image="bench", key="sha256:" + "0" * 64, target="local", actor="bench", host="here", run_id="r")

        def cycle() -> None:
            got, _ = cat.leases.claim(want, 180)
            cat.leases.release(got)

        took = statistics.median(_timed(cycle) for _ in range(20))
    return (f"bake lease (SQLite): {took * 1e3:.1f} ms to claim and release (median of 20), paid only by an image "
            f"that is baked or re-verified; a no-op bake decides first and claims none")


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def report(paths: Paths, project: Project, *, with_headline: bool = True) -> str:
    """The text ``invoke bench`` prints."""
    recipe = foundation.Recipe.load(project.root / "packer" / "foundation")
    seconds_file = foundation.cached_path(recipe, paths.cache).parent / "build-seconds"
    lines = [*headline(paths), integrity_cost(paths), lease_cost(paths), ""] if with_headline else []
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


def main() -> str:
    """``invoke bench``: the figures for this machine's KILN_HOME and project."""
    paths = default_paths()
    return report(paths, load(paths.project))
