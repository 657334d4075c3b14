"""The aws group of ``invoke faults``: the AMI path stopped and failed for real, on the EC2 twin.

A small project (a two-task ``base``) is baked with ``--target aws`` against a
moto server whose instances are real local VMs. Each case starts where the last
one stopped: Ctrl-C during the Packer build (nothing was registered: the next
bake builds again), SIGTERM during verification (the AMI is registered: the next
bake adopts it), SIGKILL during verification (the janitor must find and remove
what was left; the next bake waits for the dead bake's lease to expire, takes it
over and adopts its AMI), a spec that fails on the launched instance, and a task
that is not idempotent. After each, nothing may run in the account or on this machine:
no instance, no twin VM, no temporary key pair or security group, no
``building`` record, and no SSM parameter for an image that did not pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3

from tools.aws.account import twin_account
from tools.aws.twin import Twin
from tools.faults.cases import EXIT_CODES, Outcome
from tools.faults.chain import ROOT, janitor, kiln_env, start_bake
from tools.faults.judge import Snapshot, leftovers, mark, version_in
from tools.faults.watch import Watch

BASE = """---
- name: A small base
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Say who made it
      ansible.builtin.copy:
        content: "baked by Kiln's fault suite\\n"
        dest: /etc/motd
        mode: "0644"
"""
SPECS = """import os


def test_it_says_who_made_it(host):
    assert host.file("/etc/motd").contains("fault suite")


def test_it_knows_its_name(host):
    assert host.file("/etc/image-release").contains("IMAGE_NAME=" + os.environ["KILN_IMAGE_NAME"])
"""


def small_project(dest: Path) -> Path:
    """The repository's templates and one small image, ``base``, with two specs."""
    shutil.copytree(ROOT / "packer", dest / "packer")
    (dest / "playbooks").mkdir(parents=True)
    shutil.copy(ROOT / "playbooks/ansible.cfg", dest / "playbooks/ansible.cfg")
    (dest / "kiln.toml").write_text('[images.base]\ndescription = "The fault suite\'s small base."\n')
    (dest / "playbooks/base.yml").write_text(BASE)
    (dest / "specs/base").mkdir(parents=True)
    (dest / "specs/base/test_base.py").write_text(SPECS)
    return dest


@contextlib.contextmanager
def account(work: Path, cache: Path) -> Iterator[tuple[dict[str, str], Twin]]:
    """The emulated account with the EC2 twin. Short leases: the SIGKILLed bake's lease expires, and the next
    case takes it over, within half a minute."""
    with twin_account(work, cache, "kiln-faults", {"KILN_LEASE_SECONDS": "30"}) as (env, twin):
        yield env, twin


def left_in_account(twin: Twin) -> list[str]:
    """Instances not terminated, key pairs, security groups but the defaults, and running twin VMs."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    running = twin.settled()
    found = [f"instance {i['InstanceId']} ({i['State']['Name']})" for r in ec2.describe_instances()["Reservations"]
             for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    found += [f"key pair {k['KeyName']}" for k in ec2.describe_key_pairs()["KeyPairs"]]
    found += [f"security group {g['GroupName']}" for g in ec2.describe_security_groups()["SecurityGroups"]
              if g["GroupName"] != "default"]
    return found + [f"twin VM of {iid}" for iid in running]


def shared_catalog() -> Any:
    """The group's S3 catalog."""
    from pipeline.catalog import Catalog
    from pipeline.catalog.s3_store import S3Store

    return Catalog(S3Store(boto3.client("s3", region_name="us-east-1"), "kiln-faults", "kiln/catalog.json"))


def catalog_problems(image: str, version: str, expected: str) -> list[str]:
    """The version must be ``expected``; ``latest`` must not be published for an image that did not pass."""
    cat = shared_catalog()
    found = {r.version: r.status for r in cat.versions(image)}
    problems = [] if found.get(version) == expected else [f"{image}@{version} is {found.get(version)}, not {expected}"]
    if expected != "verified" and cat.latest(image) is None:
        with contextlib.suppress(Exception):
            value = boto3.client("ssm", region_name="us-east-1").get_parameter(
                Name=f"/kiln/images/{image}/latest")["Parameter"]["Value"]
            problems.append(f"SSM latest of {image} points at {value} although no version passed")
    return problems


def building(watch: Watch, live: dict) -> bool:
    """Packer is provisioning the build instance over SSH (its Ansible runs the playbook against the twin VM;
    ``ansible-playbook --version``, which Packer runs first, is not yet that)."""
    return watch.has_line("base@", ": build …") and any("ansible-playbook -e" in p.cmdline for p in live.values())


def verifying(watch: Watch, live: dict) -> bool:
    """A test instance is up and reached over SSH: the gate has started on it."""
    return watch.has_line("base@", "verify: VM up")


class Group:
    """The aws cases, in order, sharing one account, one twin, one KILN_HOME and one project."""

    def __init__(self, work: Path, env: dict[str, str], twin: Twin, say: Callable[[str], None]) -> None:
        self.work, self.env, self.twin, self.say = work, env, twin, say
        self.home, self.cache = work / "home", work / "cache"
        self.project = small_project(work / "project")
        self.last: Watch | None = None  # the latest bake, which went on from what the one before it left

    def went_on(self, earlier: Outcome, *, took_over: bool) -> str:
        """Whether the latest bake went on from ``earlier``'s AMI: adopted it (after taking over the dead
        bake's lease, when it was killed), and no bake key has two AMIs."""
        from pipeline.targets.aws.account import tags_of as aws_tags

        watch = self.last
        if watch is None or version_in(watch.lines, "base") != earlier.version:
            return f"no: the next bake did not go on with base@{earlier.version}"
        if took_over and not watch.has_line("base: took over the lease on", "which stopped renewing it"):
            return "no: the next bake did not say it took over the killed bake's lease"
        if not watch.has_line("adopting the AMI a previous attempt registered"):
            return "no: the next bake did not adopt the AMI already registered"
        ec2 = boto3.client("ec2", region_name="us-east-1")
        keys = [aws_tags(i).get("kiln:bake-key") for i in ec2.describe_images(Owners=["self"])["Images"]
                if aws_tags(i).get("kiln:name") == "base" and i.get("State") in ("available", "pending")]
        twice = sorted({k for k in keys if keys.count(k) > 1 and k})
        return f"no: two AMIs for bake key {', '.join(twice)}" if twice else "yes"

    def bake(self, project: Path | None = None) -> Watch:
        env = {**kiln_env(self.home, self.cache), **self.env, "KILN_PROJECT": str(project or self.project)}
        return start_bake("base", env, "--target", "aws")

    def judge(self, outcome: Outcome, watch: Watch, before: Snapshot, expected: str) -> Outcome:
        """What was left, here and in the account, and what the catalog says of the version."""
        outcome.version = version_in(watch.lines, "base")
        outcome.last_line = next((ln for ln in reversed(watch.err) if ln.strip()), "")
        survivors = watch.survivors(mark(self.home), spare=self.twin.pids())
        for p in survivors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        left = [f"process {p.pid}: {p.cmdline[:120]}" for p in survivors]
        left += leftovers(self.home, self.cache, before) + left_in_account(self.twin)
        left += [f"twin: {p}" for p in self.twin.problems]
        half = catalog_problems("base", outcome.version, expected) if outcome.version else ["no version was named"]
        # A bake that could clean up released its lease; a SIGKILLed one leaves it to expire and be taken over.
        half += [f"lease on {le.subject} still held by {le.holder}" for le in shared_catalog().leases.live()
                 if expected != "building"]
        outcome.orphans, outcome.half_published = len(left), len(half)
        outcome.details += left + half
        return outcome

    def stop(self, name: str, sig: str, ready: Callable[[Watch, dict], bool], where: str) -> Outcome:
        """A bake stopped by ``sig`` once ``ready``: it must clean up everything, and say where it stopped."""
        outcome = Outcome(case=name, phase=name.split()[1], signal=sig)
        before, started = Snapshot.take(), time.monotonic()
        watch = self.last = self.bake()
        with watch.stopping():
            if not watch.wait_for(lambda live: ready(watch, live), 1800) or watch.proc.poll() is not None:
                outcome.problems.append(f"the bake never got there (exit {watch.proc.poll()}): {watch.err[-3:]}")
            sent = time.monotonic()
            watch.poll()
            self.say(f"{name}: sending {sig} after {sent - started:.0f}s")
            if sig == "SIGKILL":  # the whole tree at once, as a machine losing power would: nothing cleans up
                for proc in [*watch.poll().values()]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
            watch.proc.send_signal(getattr(signal, sig))
            outcome.exit_code = watch.finish(600)
        outcome.seconds, outcome.stop_seconds = time.monotonic() - started, time.monotonic() - sent
        last = [ln for ln in watch.err if ln.startswith("kiln:")]
        if sig in EXIT_CODES and (outcome.exit_code != EXIT_CODES[sig] or not last or where not in last[-1]):
            outcome.problems.append(f"exit {outcome.exit_code}, last line {last[-1:]!r}; expected "
                                    f"{EXIT_CODES[sig]} and {where!r}")
        if sig == "SIGKILL":
            self.sweep(outcome)
        return self.judge(outcome, watch, before, "building" if sig == "SIGKILL" else "interrupted")

    def sweep(self, outcome: Outcome) -> None:
        """After a SIGKILL: the janitor (aws, then local) must find and remove what the bake left."""
        env = {**kiln_env(self.home, self.cache), **self.env, "KILN_PROJECT": str(self.project)}
        for target in ("aws", "local"):
            done = janitor(target, env)
            outcome.details += [f"janitor --target {target}: {ln}" for ln in done.stdout.splitlines()]
            if done.returncode != 0 or (target == "aws" and "removed" not in done.stdout):
                outcome.problems.append(f"janitor --target {target} (exit {done.returncode}) removed nothing")

    def fail(self, name: str, change: Callable[[Path], None], words: str) -> Outcome:
        """A bake that must fail in the gate on the launched instance, in one line naming why."""
        outcome, before, started = Outcome(case=name, phase="verify"), Snapshot.take(), time.monotonic()
        project = self.work / name.replace(" ", "-")
        shutil.copytree(self.project, project)
        change(project)
        watch = self.last = self.bake(project)
        with watch.stopping():
            outcome.exit_code = watch.finish(1800)
        outcome.seconds = time.monotonic() - started
        last = [ln for ln in watch.err if ln.startswith("kiln: error:")]
        if outcome.exit_code != 1 or len(last) != 1 or words not in last[0]:
            outcome.problems.append(f"exit {outcome.exit_code}, error lines {last!r}; expected one naming {words!r}")
        return self.judge(outcome, watch, before, "failed")


def failing_spec(project: Path) -> None:
    """A spec the image cannot pass (the playbook, so the bake key, stays the same)."""
    (project / "specs/base/test_broken.py").write_text("def test_broken(host):\n"
                                                       "    assert host.file('/etc/no-such-file').exists\n")


def not_idempotent(project: Path) -> None:
    """A task that reports a change on every run."""
    playbook = project / "playbooks/base.yml"
    playbook.write_text(playbook.read_text() + "    - name: Always changes\n"
                                               "      ansible.builtin.command: /bin/true\n")


def run_aws(workdir: Path, say: Callable[[str], None]) -> list[Outcome]:
    """The aws cases: stops in the build and the verification, SIGKILL and the janitor, two failing gates."""
    work = workdir / "aws"
    work.mkdir(parents=True, exist_ok=True)
    with account(work, workdir / "cache") as (env, twin):
        group = Group(work, env, twin, say)
        outcomes = [group.stop("SIGINT build (aws)", "SIGINT", building, "during build of base@"),
                    group.stop("SIGTERM verify (aws)", "SIGTERM", verifying, "during verify")]
        outcomes.append(group.stop("SIGKILL verify (aws)", "SIGKILL", verifying, ""))
        outcomes[1].resumed = group.went_on(outcomes[1], took_over=False)
        outcomes.append(group.fail("failing spec (aws)", failing_spec, "1 of 3 spec(s) failed"))
        outcomes[2].resumed = group.went_on(outcomes[2], took_over=True)  # the failing spec keeps the bake key
        outcomes.append(group.fail("not idempotent (aws)", not_idempotent, "not idempotent"))
    for outcome in outcomes:
        say(f"{outcome.case}: exit {outcome.exit_code}; orphans {outcome.orphans}, "
            f"half-published {outcome.half_published}")
        for line in outcome.problems + outcome.details:
            say(f"    {line}")
    return outcomes
