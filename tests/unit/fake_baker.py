"""One machine's ``invoke bake`` with the fake target, for the lease and parallel tests.

``python -m tests.unit.fake_baker IMAGE [--no-wait] [--jobs N] [--fail-fast] [--rows-json FILE]``

Every process started this way has its own ``KILN_HOME`` (its own local lock,
its own image files) and opens the one catalog file ``KILN_CATALOG``: two of
them behave like two machines sharing a catalog. ``FAKE_BUILD_SECONDS``
makes each build last that long (``FAKE_SLOW_IMAGE``: only that image's), so
a test can find one in progress. ``FAKE_DEFAULT_JOBS`` is the target's
default for ``--jobs`` (1 unless given). With ``--jobs`` each image is baked by a
process like this one, as ``invoke bake --jobs`` starts ``invoke bake IMAGE``.
Exits as the task would.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from pipeline import targets
from pipeline.app import baking
from pipeline.bake.schedule import write_rows
from pipeline.cli import guarded
from pipeline.progress import table
from tests.conftest import ROOT
from tests.unit.test_fake_target import FakeBuilder, FakeTarget


class SlowBuilder(FakeBuilder):
    def build(self, run: Any, layer: Any) -> Any:
        if os.environ.get("FAKE_SLOW_IMAGE", layer.spec.name) == layer.spec.name:
            time.sleep(float(os.environ.get("FAKE_BUILD_SECONDS", "0")))
        return super().build(run, layer)


class SharedTarget(FakeTarget):
    builders = {"scribe": SlowBuilder}
    default_jobs = int(os.environ.get("FAKE_DEFAULT_JOBS", "1"))


def spawn(image: str, rows: Path) -> subprocess.Popen[str]:
    """What ``--jobs`` starts for each image: this module, for that image alone."""
    return subprocess.Popen([sys.executable, "-m", "tests.unit.fake_baker", image, "--rows-json", str(rows)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            encoding="utf-8", errors="replace", start_new_session=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("image")
    parser.add_argument("--no-wait", action="store_true")
    parser.add_argument("--fail-fast", action="store_true")
    parser.add_argument("--jobs", default="")
    parser.add_argument("--rows-json", default="")
    args = parser.parse_args(argv)
    targets.register("fake", SharedTarget)
    result = baking.BakeResult()

    def summary(stream: Any = sys.stdout) -> None:
        if args.rows_json:
            write_rows(Path(args.rows_json), result.rows)
        elif result.rows:
            print(table(result.rows), file=stream, flush=True)

    def work() -> None:
        baking.bake(args.image, target="fake", wait=not args.no_wait, jobs=args.jobs, fail_fast=args.fail_fast,
                    spawn=spawn, result=result)
        summary()

    try:
        guarded(work, on_error=lambda: summary(sys.stderr))
    except Exit as stop:
        return stop.code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
