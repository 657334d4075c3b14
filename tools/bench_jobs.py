"""``invoke bench --jobs``: two sibling images baked one after the other, then at once (``--jobs 2``).

In a fresh KILN_HOME and a copy of the project with ``app2`` — a second
image on ``base`` with app's playbook and specs — base is baked first (not
counted). Then ``bake app,app2 --jobs 1``; then app's role is edited (both
images outdated again, the same work) and ``bake app,app2 --jobs 2``. The
ratio is the second wall time over the first: below 1 when the two bakes
overlap usefully, near 1 (or above) when they only compete for the same
cores. Local target, the project's default builder; about ten minutes here.

Then the same on the aws target, against the emulator (moto on 127.0.0.1)
and its EC2 twin: Packer provisions each build instance over SSH and the gate
verifies each test instance, which are local VMs. On this machine those VMs
need the same cores the local bakes do, so the aws ratio here measures the
overlap of the AWS work and waiting plus that contention, not EC2's. About
twenty minutes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipeline.config import Paths
from pipeline.progress import fmt_seconds
from tools import bench_builders
from tools.bench_builders import edit, timed, timed_cpu

SIBLING = ('\n[images.app2]\nparent = "base"\nplaybook = "playbooks/app.yml"\nspecs = "specs/app"\n'
           'forward = { http = 80 }\n')


def copy_project(paths: Paths, project: Path) -> None:
    """The project, with ``app2`` beside ``app``."""
    bench_builders.copy_project(paths.project, project)
    with open(project / "kiln.toml", "a") as toml:
        toml.write(SIBLING)


def report(paths: Paths) -> str:
    """The lines ``invoke bench --jobs`` prints: the local figure, then the aws one."""
    return "\n".join([report_local(paths), report_aws(paths)])


def report_aws(paths: Paths) -> str:
    """``app,app2`` on the aws target against the emulator and its EC2 twin: --jobs 1, then --jobs 2."""
    from tools.aws.account import twin_account

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="kiln-bench-jobs-aws-", dir="/var/tmp") as tmp, \
            twin_account(Path(tmp), paths.cache, "kiln-bench") as (account_env, _twin):
        project = Path(tmp) / "project"
        copy_project(paths, project)
        env = {**os.environ, **account_env, "KILN_HOME": str(Path(tmp) / "home"), "KILN_PROJECT": str(project),
               "KILN_CACHE": str(paths.cache), "NO_COLOR": "1"}
        base = timed(["bake", "base", "--target", "aws"], env, root)
        one, cpu = timed_cpu(["bake", "app,app2", "--target", "aws", "--jobs", "1"], env, root)
        edit(project)
        two = timed(["bake", "app,app2", "--target", "aws", "--jobs", "2"], env, root)
    return "\n".join([
        lines("the aws target, against the emulator and its EC2 twin (instances are local VMs)", base, one, two),
        f"  the --jobs 1 bakes' own CPU (Kiln, Packer, Ansible, ssh, specs; not the instances): {fmt_seconds(cpu)} "
        f"in {fmt_seconds(one)} ({cpu / one:.0%}); the rest is waiting on the instances, here on the same cores"])


def lines(where: str, base: float, one: float, two: float) -> str:
    """The figures of one target."""
    return "\n".join([
        f"two sibling images on {where} ({os.cpu_count()} cores; base first: {fmt_seconds(base)}):",
        f"  bake app,app2 --jobs 1:   {fmt_seconds(one)}",
        f"  bake app,app2 --jobs 2:   {fmt_seconds(two)}",
        f"  ratio --jobs 2 / --jobs 1: {two / one:.2f} (goal on a target that mostly waits: at most 0.6)"])


def report_local(paths: Paths) -> str:
    """Two siblings of base on the local target: --jobs 1, then --jobs 2 after an edit of app's role."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="kiln-bench-jobs-", dir="/var/tmp") as tmp:
        project = Path(tmp) / "project"
        copy_project(paths, project)
        env = {**os.environ, "KILN_HOME": str(Path(tmp) / "home"), "KILN_PROJECT": str(project),
               "KILN_CACHE": str(paths.cache), "NO_COLOR": "1"}
        base = timed(["bake", "base"], env, root)
        one = timed(["bake", "app,app2", "--jobs", "1"], env, root)
        edit(project)
        two = timed(["bake", "app,app2", "--jobs", "2"], env, root)
    return lines("the local target", base, one, two)
