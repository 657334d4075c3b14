"""The specs: pytest-testinfra against a guest, judged by the JUnit report it writes."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import ROOT, proc
from pipeline.verify.guest import Guest


@dataclass(frozen=True)
class SpecResult:
    """Outcome of the spec run, read back from its JUnit report."""

    ok: bool
    tests: int
    failures: tuple[str, ...]
    junit: Path
    log: Path


def spec_invocation(guest: Guest, *, spec_dirs: Sequence[Path], junit: Path,
                    env: Mapping[str, str]) -> proc.Invocation:
    """pytest-testinfra against the guest, one JUnit report."""
    path = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH", os.environ.get("PYTHONPATH", "")))))
    return proc.Invocation(
        argv=(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--tb=short",
              *guest.testinfra_args(), f"--junitxml={junit}",
              *(str(d) for d in spec_dirs)),
        env={**env, "PYTHONPATH": path},
    )


def spec_env(guest: Guest, identity: Mapping[str, str]) -> dict[str, str]:
    """What specs learn about the image and the machine (see specs/conftest.py)."""
    return {**{f"KILN_{key.upper()}": value for key, value in identity.items()}, **guest.environment()}


def read_junit(junit: Path) -> tuple[int, list[str]]:
    """Number of tests and the ids of failing ones from a JUnit XML file."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return 0, ["(no JUnit report was written)"]
    tests = 0
    failures: list[str] = []
    for case in root.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return tests, failures


def specs(guest: Guest, *, spec_dirs: Sequence[Path], identity: Mapping[str, str], work: Path,
          stream: bool = False) -> SpecResult:
    """Run the spec folders against the guest; the JUnit file is the source of truth."""
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    log = work / "specs.log"
    inv = spec_invocation(guest, spec_dirs=spec_dirs, junit=junit, env=spec_env(guest, identity))
    result = proc.run(inv, log, check=False, stream=stream)
    tests, failures = read_junit(junit)
    ok = result.returncode == 0 and tests > 0 and not failures
    if result.returncode != 0 and not failures:
        failures.append(f"pytest exited {result.returncode}")
    return SpecResult(ok=ok, tests=tests, failures=tuple(failures), junit=junit, log=log)
