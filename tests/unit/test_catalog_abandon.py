"""Abandoning a building record no live bake holds: refused when a bake claimed it since the janitor looked,
and fencing off the holder that left it, should it wake."""

import pytest

from pipeline.catalog import Catalog, LeaseLost

KEY = "sha256:" + "1" * 64


def building(cat: Catalog) -> str:
    cat.fence("app", KEY, "local")  # the bake that will be killed: its first write bumps the generation
    return cat.begin_bake(name="app", parent=None, fingerprint=KEY, git_commit="c", git_dirty=False,
                          run_id="20261101T020000Z-0a1d0d", log_dir="/l")


def test_abandon_marks_interrupted_and_fences_off_the_holder_that_left_it(tmp_path):
    with Catalog.open(tmp_path / "c.db") as holder, Catalog.open(tmp_path / "c.db") as janitor:
        version = building(holder)
        (seen,) = janitor.generations(("app", KEY))
        assert seen == {"local": 1}
        assert janitor.abandon("app", version, key=KEY, seen=seen, reason="left")
        assert janitor.get("app", version).status == "interrupted"
        with pytest.raises(LeaseLost):  # paused past its lease, it wakes and tries to record a verdict
            holder.set_status("app", version, "verified")
        assert janitor.get("app", version).status == "interrupted"


def test_abandon_is_refused_when_a_bake_claimed_the_lease_after_the_janitor_looked(tmp_path):
    with Catalog.open(tmp_path / "c.db") as first, Catalog.open(tmp_path / "c.db") as janitor, \
            Catalog.open(tmp_path / "c.db") as retry:
        version = building(first)
        (seen,) = janitor.generations(("app", KEY))  # read before the leases: none live
        retry.fence("app", KEY, "local")  # then a retry claims the lease and resumes the record
        retry.resume("app", version, reason="resumed")
        assert not janitor.abandon("app", version, key=KEY, seen=seen, reason="left")
        assert janitor.get("app", version).status == "building"
        retry.set_status("app", version, "verified")  # the retry's writes still count
        assert janitor.get("app", version).status == "verified"
