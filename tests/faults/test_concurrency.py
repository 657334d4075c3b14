"""Fifty writers at once, on both catalog stores: no update is lost, counted.

The same cases ``invoke faults`` prints; here on their own, without the bake chain.
"""

from __future__ import annotations

import pytest

from tools import faults

pytestmark = pytest.mark.faults


def test_fifty_sqlite_writers(tmp_path):
    outcome = faults.sqlite_writers(tmp_path)
    assert outcome.problems == [] and outcome.orphans == 0
    assert outcome.details == ["counted 50 records, 50 writers, 50 promotions of 50 each"]
    assert outcome.half_published == 0


@pytest.mark.aws
def test_fifty_s3_writers():
    outcome = faults.s3_writers()
    assert outcome.problems == [] and outcome.orphans == 0
    assert outcome.details == ["counted 50 records, 50 writers, 50 promotions of 50 each"]
    assert outcome.half_published == 0
