"""``invoke bench --jobs``: two sibling images baked one after the other, then at once (``--jobs 2``).

In a fresh KILN_HOME and a copy of the project with ``app2`` — a second
image on ``base`` with app's playbook and specs — base is baked first (not
counted). Then ``bake app,app2 --jobs 1``; then app's role is edited (both
images outdated again, the same work) and ``bake app,app2 --jobs 2``. The
ratio is the second wall time over the first: below 1 when the two bakes
overlap usefully, near 1 (or above) when they only compete for the same
cores. Local target, the project's default builder; about ten minutes here.

Then the aws target, against the emulator (moto on 127.0.0.1) with the API-only
switch: ``base`` and ``base2`` (base's playbook and specs, also on Debian's
AMI), baked with ``--jobs 1`` and then ``--jobs 2``. Packer and Kiln do all
their AWS work (instances, AMIs, copies, tags, the S3 catalog and leases) and
wait on it as they would on EC2, but nothing runs over SSH: the figure is the
overlap of that waiting, not of provisioning. An API-only image is recorded
``unverified``, so the second run bakes both again. A few minutes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipeline.config import Paths
from pipeline.progress import fmt_seconds
from tools import bench_builders
from tools.bench_builders import edit, timed

ROOTS = '\n[images.base2]\nplaybook = "playbooks/base.yml"\nspecs = "specs/base"\n'
SIBLING = ('\n[images.app2]\nparent = "base"\nplaybook = "playbooks/app.yml"\nspecs = "specs/app"\n'
           'forward = { http = 80 }\n')


def copy_project(paths: Paths, project: Path, more: str = SIBLING) -> None:
    """The project, with ``app2`` beside ``app`` (or the images ``more`` declares)."""
    bench_builders.copy_project(paths.project, project)
    with open(project / "kiln.toml", "a") as toml:
        toml.write(more)


def report(paths: Paths) -> str:
    """The lines ``invoke bench --jobs`` prints: the local figure, then the aws one."""
    return "\n".join([report_local(paths), report_aws(paths)])


def report_aws(paths: Paths) -> str:
    """``base,base2`` on the aws target against the emulator, API-only: --jobs 1, then --jobs 2."""
    import boto3

    from tools.aws import emulator

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="kiln-bench-jobs-aws-", dir="/var/tmp") as tmp, \
            emulator.server() as url:
        project = Path(tmp) / "project"
        copy_project(paths, project, ROOTS)
        env = {**os.environ, **emulator.environment(url), "KILN_HOME": str(Path(tmp) / "home"),
               "KILN_PROJECT": str(project), "KILN_CACHE": str(paths.cache), "KILN_AWS_API_ONLY": "1",
               "KILN_AWS_SSH_CIDR": "127.0.0.1/32", "KILN_AWS_CATALOG_BUCKET": "kiln-bench", "NO_COLOR": "1"}
        boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket="kiln-bench")
        one = timed(["bake", "base,base2", "--target", "aws", "--jobs", "1"], env, root)
        two = timed(["bake", "base,base2", "--target", "aws", "--jobs", "2"], env, root)
    return "\n".join([
        "two images on the aws target, against the emulator (API-only: the AWS calls and waits, no SSH):",
        f"  bake base,base2 --jobs 1:   {fmt_seconds(one)}",
        f"  bake base,base2 --jobs 2:   {fmt_seconds(two)}",
        f"  ratio --jobs 2 / --jobs 1: {two / one:.2f} (goal: at most 0.6)"])


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
    return "\n".join([
        f"two sibling images on the local target ({os.cpu_count()} cores; base first: {fmt_seconds(base)}):",
        f"  bake app,app2 --jobs 1:   {fmt_seconds(one)}",
        f"  bake app,app2 --jobs 2:   {fmt_seconds(two)}",
        f"  ratio --jobs 2 / --jobs 1: {two / one:.2f} (goal on a target that mostly waits: at most 0.6)"])
