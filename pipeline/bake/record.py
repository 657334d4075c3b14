"""The record step: only now does the catalog call the version verified, and ``latest`` moves.

The target mirrors the catalog where deployers read it (SSM parameters on
AWS), finishing any earlier move of the image left pending; each change is one
progress line.
"""

from __future__ import annotations

from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.catalog import LATEST


def step_record(run: Run, layer: Layer) -> None:
    """Verified; ``latest`` now points at this version, on the target too. Unverified: recorded so, nothing moves."""
    name = layer.spec.name
    if layer.unverified:
        run.catalog.set_status(name, layer.version, "unverified", reason=layer.unverified,
                               report=str(layer.report) if layer.report else None)
        return
    before = run.catalog.channel(name, LATEST)
    run.catalog.set_status(name, layer.version, "verified", report=str(layer.report) if layer.report else None)
    after = run.catalog.channel(name, LATEST)
    if after != before or name in run.catalog.pending():  # (a move an earlier publish left pending, too)
        for line in run.target.publish(run.catalog, [name]):
            run.reporter.line(f"{layer.ref}: {line}")


def step_reverified(run: Run, layer: Layer) -> None:
    """A re-verification that passed leaves the version as it was: verified, on the channels it was on."""
