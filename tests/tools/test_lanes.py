"""The two lanes of the suite (tests/lanes.py): real modules stay whole, chains split evenly, fast tests first."""

from tests import lanes
from tests.conftest import ROOT


def test_every_chain_of_a_lane_is_a_module_of_real_components():
    for module in lanes.CHAINS:
        assert (ROOT / module).is_file(), f"{module} is in a lane but does not exist"
        assert module.startswith(lanes.REAL)


def test_a_lane_is_one_unit_a_real_module_another_and_every_fast_test_its_own():
    assert {lanes.scope_of(f"{m}::test_x") for m in lanes.LANES[0]} == {"lane 1"}
    assert {lanes.scope_of(f"{m}::test_x[a]") for m in lanes.LANES[1]} == {"lane 2"}
    assert lanes.scope_of("tests/aws/test_s3_catalog.py::test_a") == "tests/aws/test_s3_catalog.py"
    assert lanes.scope_of("tests/unit/bake/test_plan.py::test_a") == "tests/unit/bake/test_plan.py::test_a"


def test_fast_tests_come_first_and_the_chains_last_in_their_order():
    ids = [f"{lanes.LANES[1][0]}::t", "tests/faults/test_bad_input.py::t", "tests/unit/bake/test_plan.py::t",
           f"{lanes.LANES[0][0]}::t"]
    assert sorted(ids, key=lanes.rank) == [ids[2], ids[1], ids[3], ids[0]]
