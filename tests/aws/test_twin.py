"""The EC2 twin itself. What it does for a bake is proven by ``test_aws_chain.py``; here, what it refuses."""

from __future__ import annotations

import time

import boto3
import pytest

pytestmark = pytest.mark.aws


def test_the_twin_binds_only_loopback_addresses(twin):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_key_pair(KeyName="outside")
    inst = ec2.run_instances(ImageId="ami-0debian12new00002", MinCount=1, MaxCount=1, KeyName="outside")
    address = inst["Instances"][0]["PrivateIpAddress"]  # the default VPC: not loopback
    deadline = time.monotonic() + 30
    while not twin.problems and time.monotonic() < deadline:
        time.sleep(0.5)
    assert any("outside 127.0.0.0/8" in p and address in p for p in twin.problems)
    assert twin.running() == []
    twin.problems.clear()
