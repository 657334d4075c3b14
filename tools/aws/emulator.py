"""A moto server on 127.0.0.1 as an AWS account: real HTTP, real boto3, real Packer.

Seeded with two of Debian's bookworm AMIs (``debian-amis.json``). One realism
fix: moto describes every AMI it creates with ``root_device_type = standard``
where EC2 says ``ebs`` for an EBS-backed image, and Packer refuses a non-EBS
source — so the server here reports ``ebs`` for images created from instances
or copied, as EC2 does. ``twin_network`` adds the loopback VPC whose instances
the EC2 twin (``tools.aws.twin``) turns into real VMs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SEED = Path(__file__).with_name("debian-amis.json")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAKILNTESTONLY0000", "AWS_SECRET_ACCESS_KEY": "kiln-test-secret-not-real",
               "AWS_EC2_METADATA_DISABLED": "true"}
TWIN_FILTER = {"kiln-twin": "yes"}
# The twin's subnet: the VMs of its instances listen on their private addresses there, port 22, so two twins
# on one machine (two test lanes) each need their own.
TWIN_SUBNET_ENV = "KILN_TWIN_SUBNET"
TWIN_VPC = "127.100.0.0/16"
# How Kiln reaches the twin's instances: by their private (loopback) address, in the subnet its filters choose.
TWIN_SETTINGS = {"KILN_AWS_SSH_INTERFACE": "private_ip", "KILN_AWS_SSH_CIDR": "127.0.0.0/8",
                 "KILN_AWS_VPC_FILTER": "tag:kiln-twin=yes", "KILN_AWS_SUBNET_FILTER": "tag:kiln-twin=yes"}

os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
os.environ.setdefault("MOTO_AMIS_PATH", str(SEED))
os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")


def seeded_amis() -> set[str]:
    """Debian's "official" AMIs in the emulated account."""
    return {a["ami_id"] for a in json.loads(SEED.read_text())}


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (its URL), AMIs made from instances reported EBS-backed."""
    from moto.ec2.models import amis
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    original = amis.Ami.__init__

    def ebs_backed(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if kwargs.get("instance") is not None or kwargs.get("source_ami") is not None:
            self.root_device_type = "ebs"

    amis.Ami.__init__ = ebs_backed
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        moto.stop()
        amis.Ami.__init__ = original


def reset(url: str) -> None:
    """A fresh account: every resource of the last test gone (the seeded AMIs come back)."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30)


def environment(url: str) -> dict[str, str]:
    """What boto3, Packer and Kiln need to use the emulated account (fake credentials, the endpoint)."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1"}


def twin_subnet_of_lane(worker: str) -> str:
    """The subnet of a test lane's twin (pytest-xdist's ``gw0``, ``gw1`` …): 127.100.1.0/24, 127.100.2.0/24 …"""
    lane = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    return f"127.100.{lane + 1}.0/24"


def twin_subnet() -> str:
    """The twin's subnet (``KILN_TWIN_SUBNET``, default 127.100.1.0/24), which must lie in its VPC."""
    import ipaddress

    value = os.environ.get(TWIN_SUBNET_ENV, "127.100.1.0/24")
    try:
        subnet = ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValueError(f"{TWIN_SUBNET_ENV}={value!r} is not a subnet: {exc}") from None
    if not subnet.subnet_of(ipaddress.ip_network(TWIN_VPC)):
        raise ValueError(f"{TWIN_SUBNET_ENV}={value!r} is outside the twin's VPC {TWIN_VPC}")
    return str(subnet)


def twin_network(region: str = "us-east-1") -> None:
    """A 127.100.0.0/16 VPC with one subnet (``twin_subnet``), tagged for Kiln's filters: instances there get
    loopback addresses, which the twin binds."""
    import boto3

    ec2 = boto3.client("ec2", region_name=region)
    tags = [{"Key": k, "Value": v} for k, v in TWIN_FILTER.items()]
    vpc = ec2.create_vpc(CidrBlock=TWIN_VPC, TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}])
    ec2.create_subnet(VpcId=vpc["Vpc"]["VpcId"], CidrBlock=twin_subnet(),
                      TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}])
