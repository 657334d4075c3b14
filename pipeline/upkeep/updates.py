"""Pending package updates: an image's recorded package manifest against Debian's package indexes.

The indexes are those the image's apt sources point at (the foundation recipe's
``sources``: bookworm, bookworm-updates, bookworm-security). They are downloaded
once and kept in the cache for a few hours, reduced to ``{package: version}``,
so a check costs a file read after the first. An update that comes from the
security suite is a reason to rebake; other updates are reported.
"""

from __future__ import annotations

import io
import json
import lzma
import re
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from pipeline.errors import KilnError

MAX_AGE = 6 * 3600


@dataclass(frozen=True)
class Update:
    """A package with a newer version in the indexes."""

    name: str
    installed: str
    candidate: str
    security: bool

    def describe(self) -> str:
        """``openssl 3.0.15-1~deb12u1 → 3.0.17-1~deb12u2``."""
        return f"{self.name} {self.installed} → {self.candidate}"


# -- Debian versions and Packages indexes, read with python-debian ---------------------------


def compare_versions(v1: str, v2: str) -> int:
    """-1, 0 or 1 as Debian orders two version strings (epochs, ``~``, ``+deb12u1``: Debian Policy 5.6.12)."""
    a, b = Version(v1), Version(v2)
    return (a > b) - (a < b)


def parse_packages(text: str) -> dict[str, str]:
    """A Packages file → {name: highest version}."""
    from debian import deb822  # imported here: ~10 ms that every task would pay at start-up, used only here
    found: dict[str, Version] = {}
    for stanza in deb822.Packages.iter_paragraphs(io.StringIO(text), use_apt_pkg=False):
        name, version = stanza.get("Package"), stanza.get("Version")
        if name and version and (name not in found or Version(version) > found[name]):
            found[name] = Version(version)
    return {name: str(version) for name, version in found.items()}


def index_urls(source: str, arch: str = "amd64") -> list[tuple[str, str]]:
    """``deb URL SUITE COMP…`` → (suite, Packages.xz URL) per component."""
    parts = source.split()
    if len(parts) < 4 or parts[0] != "deb":
        raise KilnError(f"cannot read the apt source {source!r}", hint="use: deb URL SUITE COMPONENT…")
    url, suite = parts[1].rstrip("/"), parts[2]
    return [(suite, f"{url}/dists/{suite}/{comp}/binary-{arch}/Packages.xz") for comp in parts[3:]]


def load_index(url: str, cache: Path, max_age: float = MAX_AGE) -> dict[str, str]:
    """The reduced index of ``url``, from the cache when fresh enough."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / (re.sub(r"[^A-Za-z0-9.-]+", "_", url) + ".json")
    if path.exists() and time.time() - path.stat().st_mtime < max_age:
        return dict(json.loads(path.read_text()))
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            text = lzma.decompress(resp.read()).decode("utf-8", errors="replace")
    except (OSError, lzma.LZMAError) as exc:
        raise KilnError(f"cannot fetch the package index {url}: {exc}") from None
    index = parse_packages(text)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index))
    tmp.replace(path)
    return index


def pending(manifest: Iterable[Mapping[str, str]], indexes: Sequence[tuple[str, Mapping[str, str]]]) -> list[Update]:
    """Packages of ``manifest`` with a newer version in any index (``(suite, index)`` pairs)."""
    updates = []
    for pkg in manifest:
        best: tuple[str, str] | None = None
        for suite, index in indexes:
            candidate = index.get(pkg["name"])
            if candidate and compare_versions(candidate, pkg["version"]) > 0 and (
                    best is None or compare_versions(candidate, best[1]) > 0):
                best = (suite, candidate)
        if best:
            updates.append(Update(pkg["name"], pkg["version"], best[1], best[0].endswith("-security")))
    return sorted(updates, key=lambda u: (not u.security, u.name))


def checker(sources: Sequence[str], cache: Path) -> Callable[[Iterable[Mapping[str, str]]], list[Update]]:
    """A function from a package manifest to its pending updates, indexes loaded once."""
    indexes = [(suite, load_index(url, cache)) for source in sources for suite, url in index_urls(source)]
    return lambda manifest: pending(manifest, indexes)

