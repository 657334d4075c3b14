"""A bake holds the catalog's lease on what it builds, so no two machines build one image twice.

``Keeper.held`` wraps the bake of one image. It decides, and when there is
work it claims the lease on ``(image, bake key, target)`` in the catalog's
store. A live lease of another machine is waited for — the holder named —
then the image is decided again: the other bake's verified image is then up
to date, and an image whose holder died (its lease expired unrenewed) is
taken over, going on with what the holder left, by the target's usual rules
for an earlier attempt. With ``wait=False`` a held lease fails at once
(exit 75, EX_TEMPFAIL), and so does one still held after ``patience``
(``KILN_WAIT_SECONDS``): a holder that renews but never finishes — hung in a
call that never returns — blocks a waiter no longer than that. While the bake
works a thread renews the lease; a lease lost anyway (this machine stalled past its expiry) stops the bake
before its next step, and a bake that woke after a takeover cannot write at all:
a new holder's first write bumps the lease's generation in the catalog
(``catalog.fences``) and every write of a bake carries the generation it got.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pipeline.bake.plan import UP_TO_DATE, Decision
from pipeline.catalog import Catalog, Lease, LeaseLost, actor
from pipeline.errors import KilnError
from pipeline.progress import Reporter

LEASE_ENV = "KILN_LEASE_SECONDS"
DEFAULT_TTL = 180.0  # renewed every third of it; a dead holder's image waits this long (plus the store's margin)
WAIT_ENV = "KILN_WAIT_SECONDS"
DEFAULT_PATIENCE = 6 * 3600.0  # the weekly job's own timeout: a hung holder blocks a waiter no longer


class LeaseHeld(KilnError):
    """Another machine is baking this image and the bake was asked not to wait."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def ttl_from(env: dict[str, str] | os._Environ[str]) -> float:
    """The lease's time to live: ``KILN_LEASE_SECONDS``, else 180 s."""
    return float(env.get(LEASE_ENV) or DEFAULT_TTL)


def patience_from(env: dict[str, str] | os._Environ[str]) -> float:
    """How long a bake waits for another machine's live lease: ``KILN_WAIT_SECONDS``, else 6 h."""
    return float(env.get(WAIT_ENV) or DEFAULT_PATIENCE)


@dataclass
class Keeper:
    """The leases of one run: claims, waits, renewals, releases."""

    run_id: str
    target: str
    wait: bool = True
    ttl: float = DEFAULT_TTL
    patience: float = DEFAULT_PATIENCE  # a holder that renews but never finishes (hung) is waited for this long
    lost: dict[str, str] = field(default_factory=dict)  # image → why its lease was lost
    renewed: dict[str, float] = field(default_factory=dict)  # image → when its lease was last claimed or renewed

    def want(self, image: str, key: str) -> Lease:
        """This run's lease on ``image`` for bake ``key``, not yet timed."""
        return Lease(image=image, key=key, target=self.target, actor=actor(), host=socket.gethostname(),
                     run_id=self.run_id)

    @contextlib.contextmanager
    def held(self, catalog: Catalog, reporter: Reporter, decide: Callable[[], Decision]) -> Iterator[Decision]:
        """The decision for one image, made again under its lease whenever there is work to do (a decision
        whose bake key changed meanwhile — a parent rebaked elsewhere — claims that key's lease instead)."""
        decision = decide()
        while decision.action != UP_TO_DATE:
            lease = self.acquire(catalog, reporter, self.want(decision.image, key_of(decision)))
            try:
                catalog.fence(lease.image, lease.key, lease.target)  # from its first write on, older holders' fail
                decision = decide()  # what another holder did while this run waited counts
                if decision.action != UP_TO_DATE and key_of(decision) != lease.key:
                    continue
                stop = threading.Event()
                renewer = threading.Thread(target=self.renew, args=(catalog, reporter, lease, stop), daemon=True)
                renewer.start()
                try:
                    yield decision
                finally:
                    stop.set()
                    renewer.join()
                return
            finally:
                self.renewed.pop(lease.image, None)
                catalog.fences.pop(lease.image, None)
                try:
                    catalog.leases.release(lease)
                except Exception as exc:  # noqa: BLE001 — never hide why the bake ended; the lease expires anyway
                    reporter.line(f"{lease.image}: could not release the lease on {lease.subject} ({exc}); "
                                  f"it expires unrenewed")
        yield decision

    def acquire(self, catalog: Catalog, reporter: Reporter, want: Lease) -> Lease:
        """``want``, claimed: at once when free, after waiting for a live holder, or taken over from a dead one."""
        seen: Lease | None = None
        give_up = time.monotonic() + self.patience
        while True:
            got, dead = catalog.leases.claim(want, self.ttl)
            if got.ours(want):
                self.renewed[want.image] = time.monotonic()
                if dead is not None:
                    reporter.line(f"{want.image}: took over the lease on {want.subject} from {dead.holder}, "
                                  f"which stopped renewing it; going on with what it left")
                return got
            if not self.wait:
                raise LeaseHeld(f"{want.subject} is being baked by {got.holder} since {got.since()}",
                                hint="run again later, or without --no-wait to wait for it")
            if seen is None or not seen.ours(got):
                reporter.line(f"{want.image}: {want.subject} is being baked by {got.holder} since {got.since()}; "
                              f"waiting for it")
            seen = got
            left = give_up - time.monotonic()
            if left <= 0:
                raise LeaseHeld(f"{want.subject} is still being baked by {got.holder} since {got.since()}: gave "
                                f"up after waiting {self.patience:.0f} s",
                                hint=f"its holder may be hung (invoke catalog.leases names it); {WAIT_ENV} sets "
                                     f"how long a bake waits")
            time.sleep(min(5.0, self.ttl / 3, left))

    def renew(self, catalog: Catalog, reporter: Reporter, lease: Lease, stop: threading.Event) -> None:
        """Renew ``lease`` every third of its time to live until ``stop``; a loss is kept for ``check``."""
        while not stop.wait(self.ttl / 3):
            try:
                lease = catalog.leases.renew(lease, self.ttl)
                self.renewed[lease.image] = time.monotonic()
            except LeaseLost as exc:
                self.lost[lease.image] = exc.message
                reporter.line(f"{lease.image}: {exc.message}; stopping before the next step")
                return
            except Exception as exc:  # noqa: BLE001 — a store hiccup: the next renewal tries again
                reporter.line(f"{lease.image}: could not renew the lease on {lease.subject} ({exc}); retrying")

    def check(self, step: str, image: str, reporter: Reporter) -> None:
        """A step hook: a bake whose lease was lost — or not renewed for two thirds of its time to live, so
        that another machine may take it over any moment — goes no further."""
        if image in self.lost:
            raise LeaseLost(f"{image}: {self.lost[image]}; stopped before {step}",
                            hint="another machine took it over; see invoke catalog.leases")
        quiet = time.monotonic() - self.renewed.get(image, time.monotonic())
        if quiet > self.ttl * 2 / 3:
            raise LeaseLost(f"{image}: the lease could not be renewed for {quiet:.0f} s of its {self.ttl:.0f} s; "
                            f"stopped before {step}", hint="check the catalog store is reachable, then bake again")


def key_of(decision: Decision) -> str:
    """The bake key a decision works on: the new bake's, or the re-verified version's (``pending`` while its
    parent has no verified version to key it on: the bake fails on that, under a lease of its own)."""
    if decision.inputs is not None:
        return decision.inputs.key
    return decision.current.fingerprint if decision.current is not None else "pending"
