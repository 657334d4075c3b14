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

from pipeline import vm
from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import KilnError
from pipeline.targets.aws import account as aws
from pipeline.targets.aws.settings import AwsSettings
from pipeline.verify import seed
from pipeline.verify.guest import Guest, Unreachable


@contextlib.contextmanager
def guest(run: Run, layer: Layer, target: aws.AwsPlace) -> Iterator[Guest | Unreachable]:
    """Launch the layer's AMI in the build region and yield the instance as a guest."""
    ami = next(a.id for a in layer.artifacts if a.region == target.settings.region)
    with test_instance(run, layer, target, ami) as inst:
        run.reporter.line(f"{layer.ref}: verify: instance {inst['instance']} running at {inst['address']}")
        if target.api_only:
            # Kiln's own API-only tests: an emulator's instance is not a machine, nothing can be checked.
            yield Unreachable(f"{aws.API_ONLY_ENV}=1: nothing is checked over SSH",
                              {"target": "aws", "instance": inst["instance"]})
            return
        access = seed.Access(user=target.settings.ssh_username, key=inst["key"], seed_files=())
        with vm.remote(inst["address"], access, layer.scratch / "verify", layer.log_dir,
                       forwards=run.project.forwards(layer.spec.name), run_id=run.run_id) as remote:
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
    subnet, vpc = placement(ec2, target.settings)
    delay = 2 if target.api_only else 10
    try:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                            TagSpecifications=[{"ResourceType": "key-pair", "Tags": run_tags}])
        created["key"] = name
        sg = ec2.create_security_group(GroupName=name, Description=f"Kiln verification of {layer.ref}",
                                       TagSpecifications=[{"ResourceType": "security-group", "Tags": run_tags}],
                                       **({"VpcId": vpc} if vpc else {}))
        created["sg"] = sg["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": target.ssh_cidr}]}])
        started = ec2.run_instances(
            ImageId=ami, InstanceType=target.settings.instance_type, MinCount=1, MaxCount=1, KeyName=name,
            SecurityGroupIds=[sg["GroupId"]], **({"SubnetId": subnet} if subnet else {}),
            TagSpecifications=[{"ResourceType": kind, "Tags": run_tags} for kind in ("instance", "volume")])
        created["instance"] = started["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[created["instance"]],
                                                WaiterConfig={"Delay": delay, "MaxAttempts": 60})
        described = ec2.describe_instances(InstanceIds=[created["instance"]])["Reservations"][0]["Instances"][0]
        yield {"instance": created["instance"], "key": key, "sg": sg["GroupId"],
               "address": address(described, target.settings.ssh_interface)}
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


def placement(ec2: Any, settings: AwsSettings) -> tuple[str | None, str | None]:
    """The subnet and VPC Kiln's filters choose, as Packer's ``subnet_filter`` does (the most free addresses);
    (None, None) without filters: the default VPC, as for the build."""
    if not settings.subnet_filter and not settings.vpc_filter:
        return None, None
    filters = [{"Name": k, "Values": [v]} for k, v in settings.subnet_filter.items()]
    if settings.vpc_filter:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": k, "Values": [v]} for k, v in settings.vpc_filter.items()])
        filters.append({"Name": "vpc-id", "Values": [v["VpcId"] for v in vpcs["Vpcs"]] or ["(none)"]})
    subnets = ec2.describe_subnets(Filters=filters)["Subnets"]
    if not subnets:
        raise KilnError(f"no subnet in {settings.region} matches [aws] subnet_filter {dict(settings.subnet_filter)} "
                        f"and vpc_filter {dict(settings.vpc_filter)}", hint="check the filters and the region")
    best = max(subnets, key=lambda s: (s.get("AvailableIpAddressCount", 0), s["SubnetId"]))
    return best["SubnetId"], best["VpcId"]


def address(instance: dict[str, Any], interface: str) -> str:
    """The address Kiln reaches an instance at: its public IP, or its private IP with ``ssh_interface``."""
    found = instance.get("PrivateIpAddress" if interface == "private_ip" else "PublicIpAddress")
    if not found:
        raise KilnError(f"instance {instance.get('InstanceId')} has no {interface.replace('_', ' ')} address",
                        hint="set [aws] ssh_interface = private_ip when this machine is inside the VPC "
                             "(KILN_AWS_SSH_INTERFACE), or use a subnet that gives public IPs")
    return str(found)


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
