"""The world group of ``invoke faults``: failures that are not Kiln's own, injected between it and AWS.

Kiln's real command line talks HTTP to a moto server through the fault proxy
(``proxy``): lost replies, server errors, throttling, latency, on the calls a
case names. Each case starts from a fresh account holding what a team has
after two weeks (``seed``: two verified ``app`` versions with an AMI in each of
two regions, ``prod`` on the older one, SSM published), runs commands, then
checks the three things a deployer relies on:

- catalog ok: the document reads, and says what the case expects;
- SSM ok: every region's parameter is where the catalog says (after the
  reconcile a case may run, as the weekly job does);
- account ok: every AMI the catalog or SSM names still exists, and nothing the
  case expects gone is left.

One row per case, with the exit code and the last ``kiln:`` line.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import ROOT
from pipeline.progress import grid

BUCKET, KEY = "kiln-world", "kiln/catalog.json"
REGIONS = ("us-east-1", "eu-west-1")
PARAM = "/kiln/images/app/{channel}"


@dataclass
class Row:
    """One case's outcome."""

    case: str
    injected: str
    catalog_ok: bool = False
    ssm_ok: bool = False
    account_ok: bool = False
    exit_code: int | None = None
    message: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check held and nothing else went wrong."""
        return self.catalog_ok and self.ssm_ok and self.account_ok and not self.problems


@dataclass
class World:
    """One case's account: the moto URL, the proxy's URL and faults, a home, and what the seed made."""

    moto: str
    proxied: str
    faults: Any
    home: Path
    versions: list[str] = field(default_factory=list)
    amis: dict[str, dict[str, str]] = field(default_factory=dict)  # version → region → AMI

    def env(self, *, through_proxy: bool = True, **extra: str) -> dict[str, str]:
        """Kiln's environment for the aws target, reaching AWS through the proxy (or directly)."""
        from tools.aws.emulator import CREDENTIALS

        env = {k: v for k, v in os.environ.items() if not k.startswith(("KILN_", "AWS_"))}
        return {**env, **CREDENTIALS, "AWS_DEFAULT_REGION": REGIONS[0], "NO_COLOR": "1",
                "AWS_ENDPOINT_URL": self.proxied if through_proxy else self.moto,
                "AWS_MAX_ATTEMPTS": "3", "KILN_HOME": str(self.home), "KILN_AWS_REGION": REGIONS[0],
                "KILN_AWS_COPY_REGIONS": REGIONS[1], "KILN_AWS_CATALOG_BUCKET": BUCKET, **extra}

    def invoke(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``invoke ARGS --target aws`` through the proxy."""
        import sys

        return subprocess.run([str(Path(sys.executable).parent / "invoke"), *args, "--target", "aws"], cwd=ROOT,
                              env=self.env(**extra), capture_output=True, text=True, timeout=300)

    def client(self, service: str, region: str = REGIONS[0], *, through_proxy: bool = False) -> Any:
        """A boto3 client straight to the emulator (the checks never go through the faults), or through the
        proxy for the cases that use Kiln's Python API."""
        import boto3

        from tools.aws.emulator import CREDENTIALS

        return boto3.session.Session().client(
            service, region_name=region, endpoint_url=self.proxied if through_proxy else self.moto,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def catalog(self) -> Any:
        """The catalog document, read straight from the emulator."""
        from pipeline.catalog import Catalog
        from pipeline.catalog.s3_store import S3Store

        return Catalog(S3Store(self.client("s3"), BUCKET, KEY, create=False))

    def ssm(self, channel: str) -> dict[str, str | None]:
        """Every region's parameter for ``app`` on ``channel``."""
        found: dict[str, str | None] = {}
        for region in REGIONS:
            client = self.client("ssm", region)
            try:
                found[region] = client.get_parameter(Name=PARAM.format(channel=channel))["Parameter"]["Value"]
            except client.exceptions.ParameterNotFound:
                found[region] = None
        return found

    def images(self) -> dict[str, set[str]]:
        """Every region's AMIs of this account."""
        return {r: {i["ImageId"] for i in self.client("ec2", r).describe_images(Owners=["self"])["Images"]}
                for r in REGIONS}


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    """The last ``kiln:`` line a command printed, or its last line."""
    lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    said = [ln for ln in lines if ln.startswith("kiln:")]
    return (said or lines or [""])[-1][:110]


@contextlib.contextmanager
def account(workdir: Path) -> Iterator[Callable[[str], World]]:
    """A moto server and the proxy in front of it; ``fresh(name)`` resets the account and seeds it."""
    from tools.aws import emulator
    from tools.faults import seed
    from tools.faults.proxy import proxy

    with emulator.server() as moto, proxy(moto) as (proxied, faults):
        def fresh(name: str) -> World:
            emulator.reset(moto)
            faults.clear()
            world = World(moto, proxied, faults, workdir / name.replace(" ", "-").replace(":", "").replace(",", ""))
            world.home.mkdir(parents=True, exist_ok=True)
            seed.seed(world)
            return world

        yield fresh


def table(rows: list[Row]) -> str:
    """case, injected, catalog ok, SSM ok, account ok, exit, message."""
    def yes(flag: bool) -> str:
        return "ok" if flag else "NO"

    return grid(("CASE", "INJECTED", "CATALOG", "SSM", "ACCOUNT", "EXIT", "MESSAGE"),
                [(r.case, r.injected, yes(r.catalog_ok), yes(r.ssm_ok), yes(r.account_ok),
                  "-" if r.exit_code is None else str(r.exit_code), r.message) for r in rows])


def run_world(workdir: Path, say: Callable[[str], None]) -> list[Row]:
    """Every case of the world group, each in a fresh account."""
    from tools.faults.world_cases import CASES

    rows = []
    with account(workdir) as fresh:
        for name, injected, case in CASES:
            row = Row(name, injected)
            try:
                world = fresh(name)
                before, rules = len(world.faults.seen), world.faults.added
                case(world, row)
                if world.faults.added > rules and all(done == "passed" for *_, done in world.faults.seen[before:]):
                    row.problems.append("the fault never fired: nothing was injected")
            except Exception as exc:  # noqa: BLE001 - a harness error is a failed row, not a crashed suite
                row.problems.append(f"harness: {type(exc).__name__}: {exc}")
            say(f"{name}: {'ok' if row.ok else 'FAILED ' + '; '.join(row.problems)}")
            rows.append(row)
    return rows
