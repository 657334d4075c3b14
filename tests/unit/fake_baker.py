"""One machine's ``invoke bake`` with the fake target, for the lease tests: ``python -m tests.unit.fake_baker IMAGE``.

Every process started this way has its own ``KILN_HOME`` (its own local lock,
its own image files) and opens the one catalog file ``FAKE_SHARED_CATALOG``:
two of them behave like two machines sharing a catalog. ``FAKE_BUILD_SECONDS``
makes each build last that long, so a test can find one in progress.
Arguments after IMAGE: ``--no-wait``. Exits as the task would.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from invoke.exceptions import Exit

from pipeline import targets
from pipeline.app import baking
from pipeline.catalog import Catalog
from pipeline.cli import guarded
from pipeline.progress import table
from tests.unit.test_fake_target import FakeBuilder, FakeTarget


class SlowBuilder(FakeBuilder):
    def build(self, run: Any, layer: Any) -> Any:
        time.sleep(float(os.environ.get("FAKE_BUILD_SECONDS", "0")))
        return super().build(run, layer)


class SharedTarget(FakeTarget):
    builders = {"scribe": SlowBuilder}

    def open_catalog(self, *, create: bool = True) -> Catalog:
        return Catalog.open(os.environ["FAKE_SHARED_CATALOG"], create=create)


def main(image: str, *flags: str) -> int:
    targets.register("fake", SharedTarget)

    def work() -> None:
        result = baking.bake(image, target="fake", wait="--no-wait" not in flags)
        if result.rows:
            print(table(result.rows), flush=True)

    try:
        guarded(work)
    except Exit as stop:
        return stop.code
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
