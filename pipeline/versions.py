"""Version scheme: ``YYYY.MMDD.HHMMSS`` in UTC, with ``.N`` appended when taken.

Versions sort by time, are unique per image (the catalog allocates them), and
read well in AMI names (``app-2026.1127.141438``). ``parse`` gives the sort key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from pipeline.errors import ConfigError

VERSION_RE = re.compile(r"^(\d{4})\.(\d{4})\.(\d{6})(?:\.(\d{1,4}))?$")
REF_RE = re.compile(r"^([a-z][a-z0-9-]{0,30})@(.+)$")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The real clock; tests inject their own."""
    return datetime.now(UTC)


def stamp(moment: datetime) -> str:
    """The version stem for a moment (converted to UTC)."""
    return moment.astimezone(UTC).strftime("%Y.%m%d.%H%M%S")


def next_version(taken: Iterable[str], clock: Clock = utcnow) -> str:
    """A new version, later than every taken one and not equal to any.

    Two bakes in the same second get ``.1``, ``.2``; a clock that went backwards
    still yields a version above the newest taken one.
    """
    taken = list(taken)
    candidate = stamp(clock())
    newest = max(taken, key=parse, default=None)
    if newest is not None and parse(newest)[:3] >= parse(candidate)[:3]:
        candidate = ".".join(newest.split(".")[:3])
    if candidate not in taken and (newest is None or parse(candidate) > parse(newest)):
        return candidate
    n = 1
    while f"{candidate}.{n}" in taken or (newest and parse(f"{candidate}.{n}") <= parse(newest)):
        n += 1
    return f"{candidate}.{n}"


def parse(version: str) -> tuple[int, int, int, int]:
    """Sort key of a version; ConfigError when it is not one of ours."""
    match = VERSION_RE.match(version)
    if not match:
        raise ConfigError(f"invalid version {version!r}",
                          hint="versions look like 2026.1127.141438 or 2026.1127.141438.1")
    year, mmdd, hms, n = match.groups()
    return int(year), int(mmdd), int(hms), int(n or 0)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@version`` (or a bare ``name``) and check both parts."""
    if "@" not in ref:
        if not re.match(r"^[a-z][a-z0-9-]{0,30}$", ref):
            raise ConfigError(f"invalid image reference {ref!r}",
                              hint="use NAME or NAME@VERSION, e.g. app@2026.1127.141438")
        return ref, None
    match = REF_RE.match(ref)
    if not match:
        raise ConfigError(f"invalid image reference {ref!r}", hint="use NAME@VERSION, e.g. app@2026.1127.141438")
    parse(match.group(2))
    return match.group(1), match.group(2)
