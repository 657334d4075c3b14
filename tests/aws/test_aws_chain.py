"""The AMI path for real: ``invoke bake app --target aws`` with the real playbooks and specs, on the EC2 twin.

Packer's ``amazon-ebs.image`` source provisions each build instance over SSH
(a twin VM), the finaliser powers it off, the AMI is registered, copied, shared
and tagged; a test instance of it is launched and the idempotence check and the
specs run over SSH (the app's ``/health`` through an SSH tunnel); only then is
it recorded verified and ``latest`` published to SSM. A second machine (its
own ``KILN_HOME``, the same S3 catalog) starts the same bake meanwhile: it
waits on the bake lease and builds nothing. About a quarter of an hour under
software emulation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from pipeline.catalog import validate
from tests.aws.helpers import (
    REGIONS,
    catalog_doc,
    check_provenance,
    ec2,
    finish,
    invoke,
    kiln_env,
    leases_held,
    nothing_left,
    start,
    tags_of,
)
from tests.conftest import copy_project

pytestmark = [pytest.mark.aws, pytest.mark.e2e]


def ssm_value(region: str, name: str) -> str | None:
    try:
        return boto3.client("ssm", region_name=region).get_parameter(Name=name)["Parameter"]["Value"]
    except boto3.client("ssm", region_name=region).exceptions.ParameterNotFound:
        return None


def show(done, twin, home: Path) -> None:
    """What the run printed, the Ansible lines of every Packer build, the twin VMs' serial consoles."""
    sys.stdout.write(done.stdout + done.stderr)
    for log in sorted(home.glob("logs/*/*/packer.log")):
        tasks = [ln for ln in log.read_text().splitlines() if "amazon-ebs.image: TASK [" in ln]
        sys.stdout.write(f"\n--- {log} ({len(tasks)} Ansible tasks)\n" + "\n".join(tasks) + "\n")
    for iid, text in twin.serial_logs():
        sys.stdout.write(f"\n--- serial console of the twin VM of {iid} (tail)\n" + "\n".join(text.splitlines()[-15:]))


def second_machine(tmp_path: Path, first: subprocess.Popen[str]) -> subprocess.Popen[str]:
    """The same bake on a second machine (its own KILN_HOME, the same S3 catalog), once the first holds a lease."""
    deadline = time.monotonic() + 900
    while not leases_held() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leases_held(), "the first bake never claimed a lease"
    return start("bake", "app", "--target", "aws", env=kiln_env(tmp_path / "home-2", KILN_ACTOR="second-machine"))


def one_ami_per_bake_key() -> None:
    """Every AMI Kiln registered in the build region is the only one of its image and bake key."""
    tagged = [tags_of(i) for i in ec2().describe_images(Owners=["self"])["Images"]]
    keys = [(t["kiln:name"], t["kiln:bake-key"]) for t in tagged if "kiln:name" in t]
    assert len(keys) == len(set(keys)) == 2, keys


def test_bake_app_on_aws_provisions_and_verifies_over_ssh(twin, tmp_path):
    home = tmp_path / "home"
    env = kiln_env(home)
    first = start("bake", "app", "--target", "aws", env=env)
    second = second_machine(tmp_path, first)
    done, other = finish(first, timeout=3600), finish(second, timeout=3600)
    show(done, twin, home)
    assert done.returncode == 0, done.stderr
    # The second machine waited for the lease's holder, then found what it had baked up to date: nothing twice.
    sys.stdout.write("\n--- the second machine\n" + other.stdout + other.stderr)
    assert other.returncode == 0, other.stderr
    assert "is being baked by" in other.stdout and "up to date: base" in other.stdout
    one_ami_per_bake_key()
    assert leases_held() == []
    assert twin.problems == []
    doc = catalog_doc()
    validate(doc)
    by_name = {i["name"]: i for i in doc["images"]}
    base, app = by_name["base"], by_name["app"]
    assert base["status"] == app["status"] == "verified"
    assert app["parent"] == {"name": "base", "version": base["version"]}
    amis = {img["name"]: check_provenance(img) for img in (base, app)}
    for img in (base, app):
        log_dir = Path(img["log_dir"])
        # Provisioned by Ansible over SSH in a Packer amazon-ebs build ...
        packer_log = (log_dir / "packer.log").read_text()
        assert "amazon-ebs.image: TASK [" in packer_log and "amazon-ebs.image: PLAY RECAP" in packer_log
        # ... and verified on a launched instance: idempotent, every spec over SSH passing.
        report = json.loads((log_dir / "report.json").read_text())
        assert report["status"] == "verified" and report["idempotence"]["ok"] and report["specs"]["ok"]
        junit = (log_dir / "junit.xml").read_text()
        assert 'failures="0"' in junit and 'errors="0"' in junit and "test_" in junit
        assert {"openssh-server", "chrony"} <= {p["name"] for p in img["packages"]}
        for region in REGIONS:
            assert ssm_value(region, f"/kiln/images/{img['name']}/latest") == amis[img["name"]][region]
    assert "test_health_from_the_host_reports_this_image" in (Path(app["log_dir"]) / "junit.xml").read_text()
    # Build and test instances were open on port 22 only to this machine (KILN_AWS_SSH_CIDR), never the world.
    assert len(twin.booted) == 4 and all(cidrs == ["127.0.0.0/8"] for cidrs in twin.ingress.values()), twin.ingress
    assert tags_of(ec2().describe_images(ImageIds=[amis["app"]["us-east-1"]])["Images"][0])["kiln:parent-ami"] == \
        amis["base"]["us-east-1"]
    nothing_left()
    assert twin.settled() == []
    # A spec-only change verifies the production AMI again, and it stays verified and published.
    project = copy_project(tmp_path / "project")
    (project / "specs/app/test_extra.py").write_text("def test_nginx_config_is_valid(host):\n"
                                                     "    assert host.run('nginx -t').rc == 0\n")
    again = invoke("bake", "app", "--target", "aws", env={**env, "KILN_PROJECT": str(project)}, timeout=1800)
    sys.stdout.write(again.stdout + again.stderr)
    assert again.returncode == 0, again.stderr
    assert "up to date: base" in again.stdout and "re-verify: app — specs changed" in again.stdout
    after = {i["name"]: i for i in catalog_doc()["images"]}
    assert after["app"]["status"] == "verified" and after["app"]["version"] == app["version"]
    assert ssm_value("us-east-1", "/kiln/images/app/latest") == amis["app"]["us-east-1"]
    noop = invoke("bake", "app", "--target", "aws", env={**env, "KILN_PROJECT": str(project)})
    assert noop.returncode == 0 and [ln.split()[3] for ln in noop.stdout.splitlines()] == ["base", "app"]
    # Channels: promote publishes in every region; revoking base takes app off it, and its parameter goes.
    done = invoke("promote", "app@latest", "--channel", "prod", "--target", "aws", env=env)
    assert done.returncode == 0, done.stderr
    assert {r: ssm_value(r, "/kiln/images/app/prod") for r in REGIONS} == amis["app"]
    revoked = invoke("revoke", f"base@{base['version']}", "--reason", "drill", "--target", "aws", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert all(ssm_value(r, "/kiln/images/app/prod") is None for r in REGIONS)
    nothing_left()
    assert twin.settled() == [] and twin.problems == []
