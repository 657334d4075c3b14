"""Failures of the world, injected between Kiln's real command line and a moto server by the fault proxy:
``invoke faults --only world`` runs every case and prints one table whose rows must all be ok."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.faults.world_cases import CASES

pytestmark = [pytest.mark.faults, pytest.mark.aws]


def test_every_world_case_keeps_the_catalog_ssm_and_the_account_right(tmp_path):
    invoke = str(Path(sys.executable).parent / "invoke")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KILN_FAULTS_TMP": str(tmp_path), "TMPDIR": str(tmp_path)}
    done = subprocess.run([invoke, "faults", "--only", "world"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split("\n\n")[-1].strip().splitlines()
    assert table[0].split()[:5] == ["CASE", "INJECTED", "CATALOG", "SSM", "ACCOUNT"]
    rows = table[1:]
    assert len(rows) == len(CASES)
    for (name, injected, _), row in zip(CASES, rows, strict=True):
        assert row.startswith(name) and injected in row, row
        assert row.count(" ok ") >= 2 and " NO " not in row, row


def test_the_proxy_names_each_apis_operations():
    from tools.faults.proxy import operation_of

    assert operation_of("POST", "/", {"x-amz-target": "AmazonSSM.PutParameter"}, b"{}", "ssm") == "PutParameter"
    assert operation_of("POST", "/", {}, b"Action=DeregisterImage&ImageId=ami-1", "ec2") == "DeregisterImage"
    assert operation_of("PUT", "/kiln-catalog/kiln/catalog.json", {}, b"{}", "s3") == "PutObject"
    assert operation_of("GET", "/kiln-catalog/kiln/catalog.json?x=1", {}, b"", "s3") == "GetObject"
    assert operation_of("PUT", "/kiln-catalog", {}, b"", "s3") == "PUTBucket"
