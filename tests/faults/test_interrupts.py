"""SIGINT and SIGTERM in every phase of a real ``invoke bake app``, through ``invoke faults``.

The chain and the concurrent writers run once (about fifteen minutes under
software emulation: the chain builds its own foundation, base and app); each
case is then judged on its own row. The AMI path's cases run in
``test_interrupts_aws.py``, in the other test lane.
"""

from __future__ import annotations

import pytest

from tests.faults.suite import check_table, run_faults
from tools import faults

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def suite() -> dict:
    return run_faults("interrupts,writers")


def test_the_suite_prints_the_table_and_passes(suite):
    check_table(suite, len(faults.CHAIN) + 6)


# What every stop must look like, written here rather than taken from the suite: (case, exit code, words the
# last line must hold). 130 and 143 are what a shell reports for SIGINT and SIGTERM.
CHAIN_ROWS = (
    ("SIGINT foundation (base)", 130, "during the foundation build"),
    ("SIGTERM foundation (base)", 143, "during the foundation build"),
    ("SIGINT build (base)", 130, "during build of base@"),
    ("SIGTERM build idempotence (base)", 143, "during build of base@"),
    ("SIGTERM verify boot (base)", 143, "during verify (boot) of base@"),
    ("SIGINT specs (base)", 130, "during verify (specs) of base@"),
    ("SIGTERM publish (base)", 143, "during record of base@"),
    ("SIGTERM build (app)", 143, "during build of app@"),
    ("SIGINT build idempotence (app)", 130, "during build of app@"),
    ("SIGINT verify boot (app)", 130, "during verify (boot) of app@"),
    ("SIGTERM specs (app)", 143, "during verify (specs) of app@"),
    ("SIGINT publish (app)", 130, "during record of app@"),
)
STOP_SECONDS = 30  # from the signal to the exit, everything cleaned up


def test_the_chain_is_every_phase_the_tests_expect():
    assert [c.name for c in faults.CHAIN] == [name for name, _, _ in CHAIN_ROWS]


@pytest.mark.parametrize(("case", "code", "words"), CHAIN_ROWS, ids=[c for c, _, _ in CHAIN_ROWS])
def test_interrupt(suite, case, code, words):
    row = suite["rows"].get(case)
    assert row is not None, "the case did not run"
    evidence = row["problems"] + row["details"]
    assert row["exit_code"] == code, evidence
    assert row["last_line"].startswith("kiln:") and words in row["last_line"], row["last_line"]
    assert row["stop_seconds"] <= STOP_SECONDS, f"stopped {row['stop_seconds']:.1f}s after the signal"
    assert row["orphans"] == 0, evidence
    assert row["half_published"] == 0, evidence
    assert row["resumed"] == "yes", row["resumed"]
    assert row["problems"] == []


def test_two_bakes_at_once_finish_the_chain(suite):
    row = suite["rows"].get("two bakes of app at once")
    assert row is not None
    assert row["exit_code"] == 0 and row["ok"], row["problems"] + row["details"]
    assert any("verified versions: {'base': 1, 'app': 1}" in d for d in row["details"])


def test_ctrl_c_during_parallel_bakes_stops_both_and_leaves_nothing(suite):
    row = suite["rows"].get("SIGINT --jobs 2 (app2, app3)")
    assert row is not None, "the case did not run"
    evidence = row["problems"] + row["details"]
    assert row["exit_code"] == 130, evidence
    assert row["last_line"].startswith("kiln:"), row["last_line"]
    assert "interrupted during parallel bakes (stopped: app2, app3)" in row["last_line"], row["last_line"]
    assert row["stop_seconds"] <= STOP_SECONDS, f"stopped {row['stop_seconds']:.1f}s after the signal"
    assert row["orphans"] == 0 and row["half_published"] == 0 and row["problems"] == [], evidence


def test_a_killed_lease_holder_is_taken_over_and_its_image_verified_not_rebuilt(suite):
    row = suite["rows"].get("SIGKILL lease holder (app2)")
    assert row is not None, "the case did not run"
    evidence = row["problems"] + row["details"]
    assert row["exit_code"] == -9, evidence
    assert row["resumed"] == "yes", row["resumed"]
    assert any(d.startswith("janitor --target local (exit 0): removed ") for d in row["details"]), evidence
    assert row["orphans"] == 0 and row["half_published"] == 0 and row["problems"] == [], evidence


def test_a_damaged_parent_is_never_built_on_booted_or_published(suite):
    row = suite["rows"].get("flipped byte in a parent")
    assert row is not None, "the case did not run"
    evidence = row["problems"] + row["details"]
    assert row["exit_code"] == 1 and row["problems"] == [] and row["orphans"] == 0, evidence
    assert "does not match its artifact id: expected sha256:" in row["last_line"], row["last_line"]
    assert "found sha256:" in row["last_line"] and "/images/sha256-" in row["last_line"], row["last_line"]
    for refused in ("bake app --force", "promote base@latest", "up base", "catalog.check"):
        [line] = [d for d in row["details"] if d.startswith(f"{refused}: ")]
        assert line.startswith(f"{refused}: exit 1: kiln: error: "), line
    assert any(d.startswith("catalog.check printed: ") and "MISMATCH base@" in d for d in row["details"]), evidence
    assert "catalog.check once repaired: exit 0" in row["details"], evidence


@pytest.mark.parametrize("store", ["SQLite", "S3"])
def test_fifty_writers_lose_nothing(suite, store):
    row = next(r for name, r in suite["rows"].items() if name.startswith(f"{faults.WRITERS} {store}"))
    assert row["half_published"] == 0 and row["orphans"] == 0 and row["problems"] == [] and row["ok"], row
    assert row["details"] == ["counted 50 records, 50 writers, 50 promotions of 50 each"], row
