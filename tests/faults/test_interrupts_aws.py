"""The AMI path on the EC2 twin stopped and failed, through ``invoke faults --only aws``.

It runs once (about five minutes under software emulation: Packer's amazon-ebs
build and verification instances are real VMs); each case is judged on its row.
"""

from __future__ import annotations

import pytest

from tests.faults.suite import check_table, run_faults

pytestmark = [pytest.mark.faults, pytest.mark.aws]


@pytest.fixture(scope="module")
def suite() -> dict:
    return run_faults("aws")


def test_the_suite_prints_the_table_and_passes(suite):
    check_table(suite, len(AWS_ROWS))


# The AMI path on the EC2 twin: (case, exit code, how the next bake went on). Every row must leave nothing
# behind — no process, no instance, no twin VM, no temporary key pair or security group — and no record claiming
# more than is true. After the stop in verification the AMI is registered: the next bake adopts it; after the
# SIGKILL it first waits for the dead bake's lease to expire and takes it over. No bake key ever has two AMIs.
AWS_ROWS = (("SIGINT build (aws)", 130, "-"), ("SIGTERM verify (aws)", 143, "yes"), ("SIGKILL verify (aws)", -9, "yes"),
            ("failing spec (aws)", 1, "-"), ("not idempotent (aws)", 1, "-"))


@pytest.mark.parametrize(("case", "code", "resumed"), AWS_ROWS, ids=[c for c, _, _ in AWS_ROWS])
def test_the_ami_path_stops_and_fails_cleanly(suite, case, code, resumed):
    row = suite["rows"].get(case)
    assert row is not None, "the case did not run"
    evidence = row["problems"] + row["details"]
    assert row["exit_code"] == code, evidence
    assert row["orphans"] == 0 and row["half_published"] == 0, evidence
    assert row["resumed"] == resumed, row["resumed"]
    assert row["problems"] == [] and row["ok"], evidence
