"""The catalog's one interface, whatever store holds it: ``Catalog`` over a ``CatalogStore``.

A store knows only how to answer a read and how to apply a change atomically
(``sqlite_store``: one SQLite transaction; ``s3_store``: a conditional write of
the shared document, retried on conflict). Every catalog operation is written
once, as a function of an open connection (``queries``, ``lifecycle``,
``channels``, ``export``), and each method below says whether it reads or
changes — so both stores behave the same by construction.

Example, as a deploy script would use it::

    from pipeline.catalog import Catalog
    with Catalog.open("/var/lib/kiln/catalog.db", create=False) as cat:
        image = cat.resolve("app", channel="prod")   # an Artifact
        print(image.id, image.path)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipeline import versions
from pipeline.catalog import channels as chan
from pipeline.catalog import export as exp
from pipeline.catalog import fences as fen
from pipeline.catalog import imports, schema
from pipeline.catalog import lifecycle as life
from pipeline.catalog import pending as pend
from pipeline.catalog import queries as q
from pipeline.catalog.leases import LeaseBook
from pipeline.catalog.records import LATEST, Artifact, ChannelEvent, ImageRecord, Move
from pipeline.catalog.sqlite_store import SqliteStore

T = TypeVar("T")
R = TypeVar("R", Move, tuple[list[str], list[Move]])
Db = sqlite3.Connection
Check = Callable[[ImageRecord], None]  # raises to refuse a channel move to that version


def checked(db: Db, result: R, check: Check | None) -> R:
    """``result`` of a channel write, after ``check`` accepted every version a channel now points at; a
    refusal raises inside the write, so nothing of it is kept."""
    moved = [result] if isinstance(result, Move) else result[1]
    for m in moved if check else ():
        if m.to_version:
            check(q.get(db, m.name, m.to_version))
    return result


class CatalogStore(Protocol):
    """Where a catalog lives. ``read`` answers a query; ``write`` applies a change atomically or not at all;
    ``leases`` says which machine is baking what (written the way the store writes)."""

    location: str
    leases: LeaseBook

    def read(self, query: Callable[[Db], T]) -> T: ...

    def write(self, change: Callable[[Db], T]) -> T: ...

    def close(self) -> None: ...


class Catalog:
    """Every version, its status, lineage, channels and artifacts. Use as a context manager."""

    def __init__(self, store: CatalogStore) -> None:
        self.store = store
        self.fences: dict[str, fen.Fence] = {}  # image → the lease generation this process's bake of it holds
        self.mirrored_by: str | None = None  # the target that mirrors channels outside the catalog (``pending``)

    @classmethod
    def open(cls, path: Path | str, *, create: bool = True) -> Catalog:
        """The SQLite catalog at ``path`` (created unless ``create`` is false)."""
        return cls(SqliteStore.open(path, create=create))

    @property
    def leases(self) -> LeaseBook:
        """Who is baking what, for every machine sharing this catalog."""
        return self.store.leases

    @property
    def path(self) -> str:
        """Where the catalog is: a file path or ``s3://bucket/key``."""
        return self.store.location

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store."""
        self.store.close()

    # -- changes: one atomic write each -----------------------------------------------

    def fence(self, image: str, key: str, target: str) -> None:
        """This process just claimed the lease on (image, key, target): the first write of its bake of ``image``
        bumps the lease's generation, and every later one must still find it (``fences``)."""
        self.fences[image] = fen.Fence(image, key, target, 0)

    def _bake_write(self, image: str, change: Callable[[Db], T]) -> T:
        """A write a bake of ``image`` makes: refused (LeaseLost) once its lease was taken over."""
        fence = self.fences.get(image)
        if fence is None or fence.generation:
            return self.store.write(lambda db: (fen.check(db, fence), change(db))[1])
        got, result = self.store.write(lambda db: (fen.bump(db, image, fence.key, fence.target), change(db)))
        self.fences[image] = got
        return result

    def begin_bake(self, *, name: str, parent: tuple[str, str] | None, fingerprint: str, git_commit: str,
                   git_dirty: bool, run_id: str, log_dir: str, inputs: Mapping[str, Any] | None = None,
                   clock: versions.Clock = versions.utcnow, version: str | None = None) -> str:
        """Allocate a new version (or record ``version``, when adopting) as ``building``; returns it."""
        fields = {"name": name, "parent": parent, "fingerprint": fingerprint, "git_commit": git_commit,
                  "git_dirty": git_dirty, "run_id": run_id, "log_dir": log_dir, "inputs": inputs, "clock": clock,
                  "version": version}
        return self._bake_write(name, lambda db: life.begin_bake(db, **fields))

    def add_artifact(self, name: str, version: str, artifact: Artifact) -> None:
        """Attach (or replace) the artifact of a version on one target/region."""
        self._bake_write(name, lambda db: life.add_artifact(db, name, version, artifact))

    def set_status(self, name: str, version: str, status: str, *, report: str | None = None,
                   reason: str | None = None) -> None:
        """Move a version to ``status``, keeping the history (channels it moves are marked pending in the same
        transaction, on a target that mirrors them)."""

        def change(db: Db) -> None:
            before = q.channels(db, name) if self.mirrored_by else None
            life.set_status(db, name, version, status, report=report, reason=reason)
            if self.mirrored_by and q.channels(db, name) != before:
                pend.mark(db, [name], self.mirrored_by, f"{name}@{version} {status}")

        self._bake_write(name, change)

    def resume(self, name: str, version: str, *, reason: str) -> None:
        """An interrupted bake goes on: its record is ``building`` again."""
        self._bake_write(name, lambda db: life.resume(db, name, version, reason=reason))

    def set_log_dir(self, name: str, version: str, log_dir: str) -> None:
        """Record where a version's logs are."""
        self._bake_write(name, lambda db: life.set_log_dir(db, name, version, log_dir))

    def record_packages(self, name: str, version: str, packages: Iterable[Mapping[str, str]]) -> None:
        """Replace a version's package manifest."""
        rows = list(packages)
        self._bake_write(name, lambda db: life.record_packages(db, name, version, rows))

    def record_verification(self, name: str, version: str, *, spec_digest: str, ok: bool,
                            report: str | None) -> None:
        """Remember one verification of a version."""
        self._bake_write(name, lambda db: life.record_verification(db, name, version, spec_digest=spec_digest,
                                                                   ok=ok, report=report))

    def abandon(self, name: str, version: str, *, key: str, seen: Mapping[str, int], reason: str) -> bool:
        """A building record left by a dead bake is marked interrupted, unless a bake claimed it since ``seen``
        (``generations``) was read; whether it was."""
        return self.store.write(lambda db: life.abandon(db, name, version, key, seen, reason))

    def generations(self, *pairs: tuple[str, str]) -> list[dict[str, int]]:
        """Every target's lease generation on each (image, key), in one read: read before the leases, and
        each given to ``abandon``."""
        return self.store.read(lambda db: [fen.generations(db, name, key) for name, key in pairs])

    def mark_deleted(self, name: str, version: str, reason: str) -> None:
        """The artifact is gone; the record stays."""
        self.store.write(lambda db: life.mark_deleted(db, name, version, reason))

    def promote(self, name: str, version: str, channel: str, *, check: Check | None = None) -> Move:
        """Point a named channel at a verified version; ``check`` may refuse it before anything is written."""
        return self.store.write(lambda db: self._mirrored(db, checked(db, chan.promote(db, name, version, channel),
                                                                      check)))

    def rollback(self, name: str, channel: str, *, check: Check | None = None) -> Move:
        """Move a named channel back one step."""
        return self.store.write(lambda db: self._mirrored(db, checked(db, chan.rollback(db, name, channel), check)))

    def revoke(self, name: str, version: str, *, reason: str, cascade: bool,
               check: Check | None = None) -> tuple[list[str], list[Move]]:
        """Revoke a version (and its descendants with ``cascade``); returns what was revoked and what moved."""
        return self.store.write(lambda db: self._mirrored(db, checked(
            db, chan.revoke(db, name, version, reason=reason, cascade=cascade), check)))

    def restore(self, name: str, version: str, *, cascade: bool = False,
                check: Check | None = None) -> tuple[list[str], list[Move]]:
        """Undo a revoke; returns what was restored and what moved."""
        return self.store.write(lambda db: self._mirrored(db, checked(
            db, chan.restore(db, name, version, cascade=cascade), check)))

    def _mirrored(self, db: Db, result: R) -> R:
        """A channel write's ``result``, its moved images marked pending in the same transaction on a target
        that mirrors channels: a publish that fails or never runs leaves a mark the next one clears."""
        moved = [result] if isinstance(result, Move) else result[1]
        if self.mirrored_by and moved:
            pend.mark(db, (m.name for m in moved), self.mirrored_by, "; ".join(m.describe() for m in moved))
        return result

    def pending(self) -> dict[str, str]:
        """Images whose channels moved here and are not yet mirrored by the target (name → the mark's token)."""
        target = self.mirrored_by
        return self.store.read(lambda db: pend.marks(db, target)) if target else {}

    def mirrored(self, seen: Mapping[str, str]) -> None:
        """The target now says what the catalog does for ``seen`` (as read by ``pending`` before the catalog
        was): their marks go, unless a newer move replaced them meanwhile."""
        target = self.mirrored_by
        if target and seen:
            self.store.write(lambda db: pend.clear(db, target, seen))

    # -- reads -------------------------------------------------------------------------

    def versions(self, name: str | None = None) -> list[ImageRecord]:
        """Every recorded version (of ``name``), ordered by name then version."""
        return self.store.read(lambda db: q.versions_of(db, name))

    def get(self, name: str, version: str) -> ImageRecord:
        """One version; CatalogError when it does not exist."""
        return self.store.read(lambda db: q.get(db, name, version))

    def latest(self, name: str) -> ImageRecord | None:
        """The newest verified (and not revoked) version of ``name``."""
        return self.store.read(lambda db: q.get(db, name, v) if (v := q.latest_version(db, name)) else None)

    def with_key(self, name: str, fingerprint: str) -> ImageRecord | None:
        """The newest verified version of ``name`` baked from exactly these inputs."""
        return self.store.read(lambda db: q.with_key(db, name, fingerprint))

    def channel(self, name: str, channel: str = LATEST) -> str | None:
        """The version ``channel`` of ``name`` points at now, or None."""
        return self.store.read(lambda db: q.channel(db, name, channel))

    def channels(self, name: str) -> dict[str, str | None]:
        """Every channel of ``name`` and where it points (latest included)."""
        return self.store.read(lambda db: q.channels(db, name))

    def pointed(self, names: Collection[str] | None = None) -> dict[tuple[str, str], tuple[Artifact, ...] | None]:
        """(image, channel) → the artifacts of the version it points at (None: nowhere), for every channel of
        ``names`` (None: every image), in one read: what a target mirrors."""

        def query(db: Db) -> dict[tuple[str, str], tuple[Artifact, ...] | None]:
            images = names if names is not None else {r.name for r in q.versions_of(db, None)}
            return {(n, ch): tuple(q.get(db, n, v).artifacts) if v else None
                    for n in sorted(images) for ch, v in q.channels(db, n).items()}

        return self.store.read(query)

    def channel_history(self, name: str, channel: str) -> list[ChannelEvent]:
        """Every move of one channel, oldest first."""
        return self.store.read(lambda db: q.channel_history(db, name, channel))

    def status_history(self, name: str, version: str) -> list[dict[str, Any]]:
        """Every status change of a version, oldest first."""
        return self.store.read(lambda db: q.status_history(db, name, version))

    def packages(self, name: str, version: str) -> list[dict[str, str]]:
        """The recorded package manifest of a version."""
        return self.store.read(lambda db: q.packages(db, name, version))

    def last_verification(self, name: str, version: str) -> dict[str, Any] | None:
        """The newest verification of a version."""
        return self.store.read(lambda db: q.last_verification(db, name, version))

    def resolve(self, name: str, *, channel: str = LATEST, target: str = "local",
                region: str | None = None) -> Artifact:
        """The artifact deploy tooling should use for ``name`` on ``channel``, ``target`` and ``region``."""
        return self.store.read(lambda db: q.resolve(db, name, channel_name=channel, target=target, region=region))

    def restore_export(self, doc: Mapping[str, Any], *, replace: bool = False) -> int:
        """Load a validated export (``imports.read``) in one write; the number of versions (``imports``)."""
        return self.store.write(lambda db: imports.restore(db, doc, replace=replace, mirrored_by=self.mirrored_by))

    def export(self) -> dict[str, Any]:
        """The whole catalog in the documented JSON shape (schema_version 1)."""
        return self.store.read(exp.export)

    def identity(self) -> str:
        """The catalog's own id (made when it was created): every AMI it records is tagged ``kiln:catalog``."""
        return self.store.read(schema.catalog_id)

    def dump(self) -> dict[str, Any]:
        """Every row of every table: the lossless form a remote store keeps."""
        return self.store.read(schema.dump)
