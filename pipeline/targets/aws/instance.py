"""Verification by launch: an instance of the new AMI, reached over SSH from this machine.

The instance gets a temporary key pair and a security group open on port 22
only to this machine (``KILN_AWS_SSH_CIDR`` overrides), all tagged with the run
id; ports the specs need are reached through SSH tunnels. Everything it made is
terminated and deleted when the block ends, on success, failure or interrupt.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

from pipeline import seed, vm
from pipeline.errors import KilnError
from pipeline.guest import Guest, Unreachable
from pipeline.layer import Layer
from pipeline.run import Run
from pipeline.targets.aws import account as aws


@contextlib.contextmanager
def guest(run: Run, layer: Layer, target: aws.AwsPlace) -> Iterator[Guest | Unreachable]:
    """Launch the layer's AMI in the build region and yield the instance as a guest."""
    ami = next(a.id for a in layer.artifacts if a.region == target.settings.region)
    with test_instance(run, layer, target, ami) as inst:
        run.reporter.line(f"{layer.ref}: verify: instance {inst['instance']} running")
        if target.emulated:
            # An emulator's instance is not a machine: there is no SSH to check.
            yield Unreachable("EC2 is an emulator: its instances have no SSH",
                              {"target": target.name, "instance": inst["instance"]})
            return
        access = seed.Access(user=target.settings.ssh_username, key=inst["key"], seed_files=())
        with vm.remote(inst["address"], access, layer.scratch / "verify", layer.log_dir,
                       forwards=run.project.forwards(layer.spec.name)) as remote:
            yield remote


@contextlib.contextmanager
def test_instance(run: Run, layer: Layer, target: aws.AwsPlace, ami: str) -> Iterator[dict[str, Any]]:
    """An instance of ``ami`` with a temporary key pair and security group; all removed on exit."""
    ec2 = target.account.client("ec2")
    name = f"kiln-verify-{run.run_id}-{layer.spec.name}"
    run_tags = aws.tag_list({"kiln:run-id": run.run_id, "kiln:name": layer.spec.name, "Name": name})
    key = layer.scratch / "verify-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    created: dict[str, Any] = {}
    delay = 2 if target.emulated else 10
    try:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                            TagSpecifications=[{"ResourceType": "key-pair", "Tags": run_tags}])
        created["key"] = name
        sg = ec2.create_security_group(GroupName=name, Description=f"Kiln verification of {layer.ref}",
                                       TagSpecifications=[{"ResourceType": "security-group", "Tags": run_tags}])
        created["sg"] = sg["GroupId"]
        cidr = "127.0.0.1/32" if target.emulated else caller_cidr()
        ec2.authorize_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}])
        started = ec2.run_instances(
            ImageId=ami, InstanceType=target.settings.instance_type, MinCount=1, MaxCount=1, KeyName=name,
            SecurityGroupIds=[sg["GroupId"]],
            TagSpecifications=[{"ResourceType": kind, "Tags": run_tags} for kind in ("instance", "volume")])
        created["instance"] = started["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[created["instance"]],
                                                WaiterConfig={"Delay": delay, "MaxAttempts": 60})
        described = ec2.describe_instances(InstanceIds=[created["instance"]])["Reservations"][0]["Instances"][0]
        address = described.get("PublicIpAddress") or described.get("PrivateIpAddress") or ""
        yield {"instance": created["instance"], "key": key, "sg": sg["GroupId"], "address": address}
    finally:
        remove(ec2, created, delay)


def remove(ec2: Any, created: dict[str, Any], delay: int) -> None:
    """Terminate the instance (and wait), then delete its security group and key pair; never raises."""
    with contextlib.suppress(Exception):
        if "instance" in created:
            ec2.terminate_instances(InstanceIds=[created["instance"]])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[created["instance"]],
                                                       WaiterConfig={"Delay": delay, "MaxAttempts": 60})
    with contextlib.suppress(Exception):
        if "sg" in created:
            ec2.delete_security_group(GroupId=created["sg"])
    with contextlib.suppress(Exception):
        if "key" in created:
            ec2.delete_key_pair(KeyName=created["key"])


def caller_cidr() -> str:
    """The address AWS sees this machine as (KILN_AWS_SSH_CIDR overrides)."""
    explicit = os.environ.get("KILN_AWS_SSH_CIDR")
    if explicit:
        return explicit
    try:
        ip = urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10).read().decode().strip()
    except OSError as exc:
        raise KilnError(f"cannot tell this machine's public address ({exc})",
                        hint="set KILN_AWS_SSH_CIDR, e.g. 10.0.0.0/16 when Jenkins runs inside the VPC") from None
    return f"{ip}/32"
