"""Stored images checked against their artifact ids before Kiln trusts them again.

A local artifact id is the sha256 of the stored file, computed when it was
stored. Before a file is used as a parent, booted (verification, ``invoke up``)
or put on a channel, its digest is compared with that id: a file changed on
disk (a bad disk, a person, a restore gone wrong) stops Kiln in one line, and
nothing is built or published. Hashing a 700 MiB image takes seconds, so a
digest is remembered by the file's identity — device, inode, size, mtime and
ctime — in ``$KILN_HOME/integrity.json``; any write to the file changes its
ctime, so an edited file is always hashed again.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pipeline.errors import IntegrityError
from pipeline.targets.local.image_store import digest_file

CACHE_FILE = "integrity.json"


def identity(path: Path) -> list[int]:
    """What changes whenever the file's content can have changed."""
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class Integrity:
    """Digests of stored files, remembered by identity in ``cache`` (a JSON file)."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def _load(self) -> dict[str, list]:
        try:
            return dict(json.loads(self.cache.read_text()))
        except (OSError, ValueError):
            return {}

    def remember(self, path: Path, hexdigest: str) -> None:
        """Record ``path``'s digest for its current identity (the store step has just computed it)."""
        known = self._load()
        known[str(path)] = [*identity(path), hexdigest]
        known = {p: v for p, v in known.items() if Path(p).exists()}
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache.parent, prefix=".integrity-")
        with os.fdopen(fd, "w") as out:
            json.dump(known, out)
        os.replace(tmp, self.cache)

    def digest(self, path: Path, *, full: bool = False) -> str:
        """``path``'s sha256: remembered when its identity has not changed, else (or with ``full``) hashed."""
        known = self._load().get(str(path))
        if not full and known and known[:-1] == identity(path):
            return str(known[-1])
        hexdigest = digest_file(path)
        self.remember(path, hexdigest)
        return hexdigest

    def check(self, path: Path, artifact_id: str, *, full: bool = False) -> None:
        """IntegrityError unless ``path`` still has the content ``artifact_id`` names."""
        if not artifact_id.startswith("sha256:"):
            return
        found = self.digest(path, full=full)
        if f"sha256:{found}" != artifact_id:
            raise IntegrityError(f"{path}: its content does not match its artifact id: expected {artifact_id}, "
                                 f"found sha256:{found}",
                                 hint="the file changed on disk since it was stored; nothing was built or "
                                      "published. Restore it, or rebake (invoke bake NAME --force); "
                                      "invoke catalog.check lists every such file")
