"""The harness tasks, ``invoke bench`` and ``invoke faults``: kept beside the harnesses they run, not in tasks.py.

Each loads its harness only when it runs (they pull in moto and boto3), so
``invoke --list`` and every other task start as fast as before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import task

from pipeline import config
from pipeline.cli import guarded


def own_catalogs() -> None:
    """The harness's bakes keep their catalogs in the throwaway homes they make: a KILN_CATALOG of the caller's
    would send their test images to a catalog others share (and the checks would read the wrong file)."""
    os.environ.pop("KILN_CATALOG", None)


@task(help={"builders": "instead: both local builders side by side, each baking app cold, after an app change and "
                        "(chroot) converging an edit; about twenty minutes",
            "jobs": "instead: two images baked with --jobs 1, then --jobs 2, locally and on aws (emulated); "
                    "about thirty minutes",
            "boot": "instead: boot this image's newest verified version three times as the gate does, and print "
                    "how long each took to answer and where the last one's time went, from inside; about two "
                    "minutes"})
def bench(c, builders=False, jobs=False, boot=""):
    """Print measured figures: no-op bake vs full bake, resolve with 10,000 versions, step times, sizes."""
    from tools import bench as bench_tool  # harnesses are loaded only by their own tasks (they pull in moto, boto3)
    from tools import bench_boot, bench_builders, bench_jobs

    if builders or jobs:
        own_catalogs()
    paths = config.default_paths()
    guarded(lambda: print(bench_builders.report(paths) if builders else bench_jobs.report(paths) if jobs
                          else bench_boot.report(paths, boot) if boot else bench_tool.main()))


@task(help={"only": "all (default: interrupts, aws, writers), interrupts (the local bake chain, about 15 minutes), "
                    "aws (the AMI path on the EC2 twin, about 5 minutes), writers, several of them comma-separated "
                    "(interrupts,writers), or world alone (lost replies, 5xx, throttling and damaged documents "
                    "injected between Kiln and AWS, about 2 minutes)",
            "json": "also write every case's outcome and evidence to this JSON file",
            "keep": "keep the chain's KILN_HOME and KILN_CACHE in this folder (default: a temporary one)"})
def faults(c, only="all", json="", keep=""):
    """Interrupt real bakes of app in every phase (SIGINT, SIGTERM), race catalog writers, or (--only world) inject
    failures of the world between Kiln and AWS; print the table."""
    from tools import faults as fault_suite  # harnesses are loaded only by their own tasks (they pull in moto, boto3)

    own_catalogs()
    guarded(lambda: fault_suite.main(only=only, json_path=Path(json) if json else None,
                                     keep=Path(keep).resolve() if keep else None))


@task(help={"serve": "instead: serve the site on 127.0.0.1 (--port), rebuilt on every edit, until Ctrl-C",
            "port": "the port --serve listens on (default 8000)",
            "refresh": "first rewrite each task page's quote of invoke --help TASK with what it prints now",
            "site": "where the built site goes (default: site/)"})
def docs(c, serve=False, port=8000, refresh=False, site="site"):
    """Build the documentation site (docs/, mkdocs.yml) with mkdocs build --strict; check its task pages first."""
    from pipeline.errors import ConfigError
    from tools import docs as site_tool

    def work() -> None:
        for page in site_tool.refresh(site_tool.ROOT / "docs") if refresh else ():
            print(f"refreshed {page.relative_to(site_tool.ROOT)}")
        problems = site_tool.check(site_tool.ROOT / "docs")
        if problems:
            print("\n".join(problems), file=sys.stderr)
            raise ConfigError(f"{len(problems)} task page(s) differ from invoke --help", hint="invoke docs --refresh")
        if serve:
            site_tool.serve(int(port))
            return
        built = site_tool.build(Path(site).resolve())
        if built.returncode != 0:
            warnings = [line for line in built.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
            print("\n".join(warnings or built.stderr.splitlines()[-5:]), file=sys.stderr)
            raise ConfigError(f"mkdocs build --strict failed with {len(warnings)} finding(s), above",
                              hint="fix the page each names (broken links and pages outside the nav fail)")
        print(f"site: {Path(site).resolve()}/index.html")

    guarded(work)
