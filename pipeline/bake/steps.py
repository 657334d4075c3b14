"""The steps of a layer's bake, in order, and the small runner that executes them.

``STEPS`` is the whole sequence: build (``pipeline.bake.build``), store (the
target keeps it), verify (``pipeline.verify.gate``), record (``pipeline.bake.record``). A
resumed bake runs the tail from where it stopped; a re-verification runs the
gate and leaves the record as it was. Whatever happens, the runner removes the
layer's scratch folder, takes the record out of ``building``, writes
``timings.json`` and adds the layer's row to the summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from pipeline import machine, proc
from pipeline.bake import build, record
from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.catalog import LeaseLost
from pipeline.errors import KilnError, VerificationFailed
from pipeline.evidence import write_json
from pipeline.progress import Row, fmt_seconds
from pipeline.verify import gate

Step = Callable[[Run, Layer], None]

STEPS: tuple[tuple[str, Step], ...] = (
    ("build", build.step_build),
    ("store", build.step_store),
    ("verify", gate.step_verify),
    ("record", record.step_record),
)

WHOLE = ("record",)  # steps that a signal never cuts in half
REVERIFY_STEPS: tuple[tuple[str, Step], ...] = (("verify", gate.step_verify), ("record", record.step_reverified))


def steps_from(first: str) -> tuple[tuple[str, Step], ...]:
    """``STEPS`` from the step called ``first`` on (where a resumed bake goes on)."""
    return STEPS[[name for name, _ in STEPS].index(first):]


def run_steps(run: Run, layer: Layer, steps: Sequence[tuple[str, Step]], *, only_verdicts: bool = False) -> Row:
    """Run ``steps``; whatever happens, the scratch folder goes and the record leaves ``building``.

    ``only_verdicts``: only a failed gate (``VerificationFailed``) changes the record; an interrupt or an
    error of Kiln's world (no subnet, no capacity, an SSH timeout, a store hiccup) leaves it exactly as it
    was — a re-verification of a version that is verified and deployed must not take it away for that.
    """
    started = time.monotonic()
    status, label = "interrupted", "start"
    layer.scratch.mkdir(parents=True, exist_ok=False, mode=0o700)
    try:
        for number, (name, step) in enumerate(steps, 1):
            label = run.target.step_labels.get(name, name)
            for hook in run.hooks:
                hook(label, layer.spec.name, run.reporter)
            t0 = time.monotonic()
            run.reporter.line(f"{layer.ref}: {label} …")
            # Recording and publishing happen whole or not at all: a signal waits until the step is done.
            with proc.deferred_signals() if name in WHOLE else contextlib.nullcontext():
                step(run, layer)
                if number == len(steps):
                    status = layer.verdict
            layer.timings[label] = time.monotonic() - t0
            run.reporter.line(f"{layer.ref}: {label} done ({fmt_seconds(layer.timings[label])})")
    except LeaseLost as exc:
        status = "lease lost"  # another machine holds the bake now: its record is not this run's to change
        exc.message = f"{exc.message} [step: {label}]"
        raise
    except KilnError as exc:
        status = "failed" if not only_verdicts or isinstance(exc, VerificationFailed) else "unchanged"
        kept_note = f"; {layer.ref} stays as it was (not a verdict on the image)" if status == "unchanged" else ""
        exc.message = f"{exc.message} [step: {label}]{kept_note}"
        raise
    except KeyboardInterrupt as exc:
        phase = f" ({layer.phase})" if layer.phase and label == "verify" else ""
        done = f" (it had finished: {layer.ref} is {status})" if status in ("verified", "unverified") else ""
        exc.where = f"during {label}{phase} of {layer.ref}{done}"  # type: ignore[attr-defined]
        raise
    except Exception:
        status = "unchanged" if only_verdicts else "failed"
        raise
    finally:
        machine.remove_tree(layer.scratch)
        kept = ("verified", "unverified", "lease lost", "unchanged", *(("interrupted",) if only_verdicts else ()))
        if status not in kept:
            leave_verdict(run, layer, status, label)
        write_json(layer.log_dir / "timings.json", {"status": status, "steps": layer.timings,
                                                    "total": time.monotonic() - started})
        run.rows.append(Row(layer.spec.name, layer.version, status, time.monotonic() - started, shown(layer)))
    return run.rows[-1]


def leave_verdict(run: Run, layer: Layer, status: str, label: str) -> None:
    """Take the record out of ``building`` (or a re-verified version out of its channels), publishing every
    channel that moved — unless the lease was taken over meanwhile (the fenced write is refused: the record
    is the new holder's). Never raises: the error that ended the bake is the one the user must see."""
    name = layer.spec.name
    try:
        before = run.catalog.channels(name)
        run.catalog.set_status(name, layer.version, status, reason=f"{status} at {label}",
                               report=str(layer.report) if layer.report else None)
        after = run.catalog.channels(name)
    except LeaseLost as exc:
        run.reporter.line(f"{layer.ref}: not recorded {status}: {exc.message}")
        return
    except Exception:  # noqa: BLE001 — the catalog cannot be written: the bake's own error says why
        return
    try:
        for line in run.target.publish(run.catalog, [name]) if after != before or name in run.catalog.pending() else ():
            run.reporter.line(f"{layer.ref}: {line}")
    except Exception as exc:  # noqa: BLE001
        run.reporter.line(f"{layer.ref}: recorded {status}, but its channels could not be published ({exc})")


def shown(layer: Layer) -> str:
    """The artifact column of the summary: the stored file, or every region's AMI."""
    arts = sorted(layer.artifacts, key=lambda a: a.region or "")
    return ", ".join(a.path or (f"{a.region}:{a.id}" if a.region else a.id) for a in arts)
