"""``invoke bench --builders``: the local target's two builders side by side, measured in one run.

For each builder, in a fresh KILN_HOME and a copy of the project (the
foundation comes from KILN_CACHE, built once): a cold bake of ``app`` (base,
then app, each verified), an app-only change rebaked and verified, and the app
child's size on disk against a flattened copy; for the chroot builder also
``invoke converge app`` of an edited playbook in a warm workspace. About twenty
minutes under software emulation, most of it the Packer builder's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import Paths
from pipeline.progress import fmt_seconds, grid
from tools.bench import flattened_size

BUILDERS = ("packer", "chroot")
PROJECT = ("kiln.toml", "packer", "playbooks", "specs")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds ``invoke …`` took; RuntimeError with its last lines when it fails."""
    return timed_cpu(argv, env, cwd)[0]


def timed_cpu(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``invoke …``: the CPU of its own process tree (what it and every process
    below it that ended used), not of machines it only talks to; RuntimeError with its last lines when it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "invoke"), *argv], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"invoke {' '.join(argv)} failed: {out.read().decode(errors='replace')[-600:]}")
    return wall, usage.ru_utime + usage.ru_stime


def edit(project: Path) -> None:
    """An app-only change: a comment in one of app's role files (its bake key changes, base's does not)."""
    tasks = project / "playbooks/roles/app_service/tasks/main.yml"
    tasks.write_text(tasks.read_text() + f"# bench edit {time.time_ns()}\n")


def copy_project(source: Path, project: Path) -> None:
    """What a bake reads of the project at ``source`` (``PROJECT``), copied to ``project`` to edit freely."""
    project.mkdir(parents=True)
    for name in PROJECT:
        if (source / name).is_dir():
            shutil.copytree(source / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source / name, project / name)


def measure(builder: str, paths: Paths, work: Path) -> dict[str, str]:
    """One builder's figures."""
    project = work / "project"
    copy_project(paths.project, project)
    env = {**os.environ, "KILN_HOME": str(work / "home"), "KILN_PROJECT": str(project), "KILN_CACHE": str(paths.cache),
           "KILN_BUILDER": builder, "NO_COLOR": "1"}
    root = Path(__file__).resolve().parent.parent
    figures = {"cold": fmt_seconds(timed(["bake", "app"], env, root))}
    edit(project)
    figures["change"] = fmt_seconds(timed(["bake", "app"], env, root))
    doc = json.loads(subprocess.run([str(Path(sys.executable).parent / "invoke"), "catalog.export"], cwd=root,
                                    env=env, capture_output=True, text=True, check=True).stdout)
    record = next(i for i in reversed(doc["images"]) if i["name"] == "app")
    figures["where"] = where_it_went(Path(record["log_dir"]) / "timings.json")
    app = Path(record["artifacts"][0]["path"])
    figures["delta"] = f"{app.stat().st_size / flattened_size(app):.1%}"
    figures["converge"] = "none"
    if builder == "chroot":
        timed(["converge", "app"], env, root)  # the workspace, warm
        edit(project)
        figures["converge"] = fmt_seconds(timed(["converge", "app"], env, root))
    return figures


def where_it_went(timings: Path) -> str:
    """The app layer's steps, and its verification's phases: ``build 13s · boot 40s · specs 35s · …``."""
    steps = json.loads(timings.read_text())["steps"]
    parts = [(name.removeprefix("verify "), seconds) for name, seconds in steps.items()
             if name != "verify" and seconds >= 0.5]
    return " · ".join(f"{name} {fmt_seconds(seconds)}" for name, seconds in parts)


def report(paths: Paths) -> str:
    """The table ``invoke bench --builders`` prints."""
    measured = {}
    for builder in BUILDERS:
        with tempfile.TemporaryDirectory(prefix=f"kiln-bench-{builder}-", dir="/var/tmp") as tmp:
            measured[builder] = measure(builder, paths, Path(tmp))
    rows = [("cold bake foundation → base → app, verified (foundation cached)", "cold"),
            ("app-only change, rebaked and verified", "change"),
            ("  of which (app layer: steps, verify phases)", "where"),
            ("converge of an edited app playbook (warm workspace)", "converge"),
            ("app child on disk vs a flattened copy", "delta")]
    table = grid(("FIGURE", *(f"{b.upper()} BUILDER" for b in BUILDERS)),
                 [(label, *(measured[b][key] for b in BUILDERS)) for label, key in rows])
    return table
