"""Fencing tokens: a bake whose lease was taken over can no longer write to the catalog.

A lease alone does not survive a paused holder: A stalls past its lease's
expiry (a stopped VM, a swapped-out agent), B takes the lease over and records
its verdict, A wakes and writes its own over B's. So each holder's first
catalog write bumps a generation kept in the catalog itself (table ``fences``),
and every later write of its bake carries the generation it got. (The first
write, not the claim: a bake that stops on bad input right after its claim
leaves the catalog's bytes as they were.) The check runs
inside the write's own transaction (SQLite) or conditional PUT (S3), so a
write of a holder whose generation is no longer the current one is refused
whole, with ``LeaseLost`` — there is no moment between check and write for a
takeover to slip into.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from pipeline.catalog.leases import LeaseLost


@dataclass(frozen=True)
class Fence:
    """The generation of the lease on (image, key, target) that a bake holds."""

    image: str
    key: str
    target: str
    generation: int


def bump(db: sqlite3.Connection, image: str, key: str, target: str) -> Fence:
    """A new generation for a lease just claimed (or taken over): every older holder is fenced off."""
    db.execute("INSERT INTO fences VALUES (?, ?, ?, 1) ON CONFLICT (image, key, target) "
               "DO UPDATE SET generation = generation + 1", (image, key, target))
    row = db.execute("SELECT generation FROM fences WHERE image=? AND key=? AND target=?",
                     (image, key, target)).fetchone()
    return Fence(image, key, target, int(row[0]))


def check(db: sqlite3.Connection, fence: Fence | None) -> None:
    """Refuse the write of a bake whose generation is not the current one (nothing to check: not a bake)."""
    if fence is None:
        return
    row = db.execute("SELECT generation FROM fences WHERE image=? AND key=? AND target=?",
                     (fence.image, fence.key, fence.target)).fetchone()
    if row is None or int(row[0]) != fence.generation:
        now = f"generation {row[0]}" if row else "no generation"
        raise LeaseLost(f"{fence.image}: the lease was taken over ({now} now, this bake held generation "
                        f"{fence.generation}); its catalog write was refused",
                        hint="another machine bakes it now; see invoke catalog.leases")


def generations(db: sqlite3.Connection, image: str, key: str) -> dict[str, int]:
    """The current generation of every target's lease on (image, key)."""
    return {target: int(gen) for target, gen in db.execute(
        "SELECT target, generation FROM fences WHERE image=? AND key=?", (image, key))}
