"""The verification gate, one module for every target, builder, resume and re-verification.

On a guest of the stored image (a throwaway VM, a test instance): the layer's
playbook runs again and must change nothing (idempotence, Molecule's check),
then the specs of the image and its ancestors run (pytest-testinfra), then the
package manifest is read. The verdict is one ``GateResult`` and one
``report.json``; only an image whose gate passed may be recorded ``verified``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import VerificationFailed
from pipeline.evidence import write_json
from pipeline.verify import ansible, testinfra
from pipeline.verify.ansible import IdempotenceResult
from pipeline.verify.guest import Guest, Unreachable
from pipeline.verify.testinfra import SpecResult


@dataclass(frozen=True)
class Subject:
    """What is under test: the image's identity, its playbook, and the spec folders of its lineage."""

    project: Path
    playbook: Path
    spec_dirs: tuple[Path, ...]
    identity: Mapping[str, str]  # image_name, image_version, image_parent, git_commit, git_dirty
    build_public_key: str = ""  # the build's key, which the specs check is gone
    converged_twice: Path | None = None  # the builder's own second run, which changed nothing (its log)


@dataclass(frozen=True)
class GateResult:
    """The verdict, with the evidence behind it: the report, each check's result, the package manifest."""

    report: Path
    idempotence: IdempotenceResult | None
    specs: SpecResult | None = None
    packages: tuple[Mapping[str, str], ...] = ()
    skipped: str = ""  # why nothing could be checked: then nothing was, and the image is never called verified

    @property
    def ok(self) -> bool:
        """Idempotent and every spec passed; a skipped gate is not a failed one (the image is ``unverified``)."""
        return bool(self.skipped) or bool(self.idempotence and self.idempotence.ok and self.specs and self.specs.ok)

    def failure(self, ref: str) -> VerificationFailed:
        """The one-line error of a failed gate."""
        idem = self.idempotence
        if idem is not None and not idem.ok:
            what = (f"changed on a second run: {', '.join(idem.changed_tasks)}" if idem.changed_tasks
                    else f"failed on a second run: {', '.join(idem.failed_tasks)}")
            return VerificationFailed(f"{ref}: not idempotent — {what}", log=idem.log)
        specs = self.specs
        assert specs is not None
        return VerificationFailed(f"{ref}: {len(specs.failures)} of {specs.tests} spec(s) failed: "
                                  f"{', '.join(specs.failures[:3])} (junit: {specs.junit})", log=specs.log)


def check(guest: Guest, subject: Subject, work: Path, *, stream: bool = False,
          progress: Callable[[str, str], None] = lambda _phase, _msg: None) -> GateResult:
    """Idempotence, then specs, then the package manifest, against ``guest``; evidence goes to ``work``."""
    if subject.converged_twice is not None:  # Molecule's model: checked right after the converge, same image
        progress("idempotence", "VM up; idempotent when built (the second converge changed nothing)")
        idem = IdempotenceResult(ok=True, changed_tasks=(), failed_tasks=(), log=subject.converged_twice)
    else:
        progress("idempotence", "VM up, checking idempotence")
        extravars = {f"kiln_{k}": v for k, v in subject.identity.items()}
        idem = ansible.idempotence(guest, project=subject.project, playbook=subject.playbook, extravars=extravars,
                                   work=work / "idempotence", stream=stream)
    if not idem.ok:
        return GateResult(report(work, subject, "failed", idempotence=idem), idem)
    progress("specs", "idempotent; running specs")
    identity = {**subject.identity, **({"build_public_key": subject.build_public_key}
                                       if subject.build_public_key else {})}
    specs = testinfra.specs(guest, spec_dirs=subject.spec_dirs, identity=identity, work=work, stream=stream)
    packages = package_manifest(guest) if specs.ok else []
    write_json(work / "packages.json", packages)
    status = "verified" if specs.ok else "failed"
    return GateResult(report(work, subject, status, idempotence=idem, specs=specs), idem, specs, tuple(packages))


def skipped(unreachable: Unreachable, subject: Subject, work: Path) -> GateResult:
    """The verdict where there is no machine to check (Kiln's API-only tests): nothing was run, nothing passed."""
    extra = {**unreachable.details, "specs": {"ok": False, "skipped": unreachable.reason}}
    return GateResult(report(work, subject, "unverified", extra=extra), None, skipped=unreachable.reason)


def report(work: Path, subject: Subject, status: str, *, idempotence: IdempotenceResult | None = None,
           specs: SpecResult | None = None, extra: Mapping[str, object] | None = None) -> Path:
    """The verification report the catalog points at."""
    doc: dict[str, object] = {"image": subject.identity["image_name"], "version": subject.identity["image_version"],
                              "status": status, **(extra or {})}
    if idempotence:
        doc["idempotence"] = {"ok": idempotence.ok, "changed": list(idempotence.changed_tasks),
                              "failed": list(idempotence.failed_tasks), "log": str(idempotence.log)}
    if specs:
        doc["specs"] = {"ok": specs.ok, "tests": specs.tests, "failures": list(specs.failures),
                        "junit": str(specs.junit), "log": str(specs.log)}
    return write_json(work / "report.json", doc)


def package_manifest(guest: Guest) -> list[dict[str, str]]:
    """Every installed package (name, version, architecture) of the running guest."""
    out = subprocess.run(guest.command("dpkg-query", "-W", "-f", "'${Package}\\t${Version}\\t${Architecture}\\n'"),
                         check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    return [{"name": n, "version": v, "architecture": a} for n, v, a in rows]


def subject_of(run: Run, layer: Layer) -> Subject:
    """The layer as the gate sees it."""
    key = layer.log_dir / "build-key.pub"
    return Subject(project=run.project.root, playbook=layer.spec.playbook,
                   spec_dirs=tuple(s.specs for s in run.project.lineage(layer.spec.name)), identity=layer.identity(),
                   build_public_key=key.read_text().strip() if key.exists() else "",
                   converged_twice=Path(layer.built["idempotence"]) if "idempotence" in layer.built else None)


def step_verify(run: Run, layer: Layer) -> None:
    """The verify step: the gate on the target's guest; the verdict and its evidence go to the catalog."""
    subject = subject_of(run, layer)
    layer.phase, since = "boot", [time.monotonic()]

    def lap() -> None:  # each phase's seconds go to timings.json, to show where verification spends its time
        layer.timings[f"verify {layer.phase}"] = time.monotonic() - since[0]
        since[0] = time.monotonic()

    def progress(phase: str, message: str) -> None:
        lap()
        layer.phase = phase
        run.reporter.line(f"{layer.ref}: verify: {message}")

    with run.target.guest(run, layer) as guest:
        result = (skipped(guest, subject, layer.log_dir) if isinstance(guest, Unreachable) else
                  check(guest, subject, layer.log_dir, stream=run.verbose, progress=progress))
        lap()
    layer.report, layer.unverified = result.report, result.skipped
    name, version = layer.spec.name, layer.version
    run.catalog.record_verification(name, version, spec_digest=layer.spec_digest, ok=result.ok and not result.skipped,
                                    report=str(result.report))
    if not result.ok:
        raise result.failure(layer.ref)
    if result.packages:
        run.catalog.record_packages(name, version, result.packages)

