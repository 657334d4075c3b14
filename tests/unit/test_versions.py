from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline import versions
from pipeline.errors import ConfigError

T = datetime(2026, 11, 27, 14, 14, 38, tzinfo=UTC)


def clock(moment=T):
    return lambda: moment


def test_stamp_is_utc():
    cet = timezone(timedelta(hours=1))
    assert versions.stamp(datetime(2026, 11, 27, 15, 14, 38, tzinfo=cet)) == "2026.1127.141438"


def test_first_version():
    assert versions.next_version([], clock()) == "2026.1127.141438"


def test_same_second_gets_suffix():
    assert versions.next_version(["2026.1127.141438"], clock()) == "2026.1127.141438.1"
    assert versions.next_version(["2026.1127.141438", "2026.1127.141438.1"], clock()) == "2026.1127.141438.2"


def test_clock_going_backwards_still_sorts_after_newest():
    taken = ["2026.1127.141438"]
    v = versions.next_version(taken, clock(T - timedelta(hours=1)))
    assert versions.parse(v) > versions.parse(taken[0])


def test_versions_sort_by_time_not_text():
    vs = ["2026.1127.141438.10", "2026.1127.141438.2", "2026.1127.141438", "2025.1231.235959"]
    assert sorted(vs, key=versions.parse) == ["2025.1231.235959", "2026.1127.141438",
                                              "2026.1127.141438.2", "2026.1127.141438.10"]


def test_unique_over_many():
    taken: list[str] = []
    for _ in range(50):
        taken.append(versions.next_version(taken, clock()))
    assert len(set(taken)) == 50
    assert sorted(taken, key=versions.parse) == taken


@pytest.mark.parametrize("bad", ["1.0", "2026-11-27", "latest", "2026.1127.14143", ""])
def test_invalid_versions(bad):
    with pytest.raises(ConfigError, match="invalid version"):
        versions.parse(bad)


def test_parse_ref():
    assert versions.parse_ref("app@2026.1127.141438") == ("app", "2026.1127.141438")
    assert versions.parse_ref("app") == ("app", None)
    for bad in ("App@2026.1127.141438", "app@", "app@x", "@1"):
        with pytest.raises(ConfigError):
            versions.parse_ref(bad)
