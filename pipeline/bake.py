"""Bake an image and, first, whatever it is built on.

A bake of one layer is a fixed sequence of steps (``STEPS``): build with Packer,
store the output at its content-addressed path, verify it in a throwaway boot,
record the verdict. Every resource a step creates is owned by a context manager
or a ``finally``, so a failure or an interrupt leaves no VM, no Packer and no
temporary disk behind, and the catalog never says ``verified`` for an image
that was not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import catalog as catalog_mod
from pipeline import config, foundation, inputs, packer, proc, seed, store, templates, verify, vm
from pipeline import plan as plan_mod
from pipeline.errors import BuildFailed, CommandFailed, KilnError, ToolMissing, VerificationFailed
from pipeline.progress import Reporter, Row, fmt_seconds

TARGETS = ("local", "aws")
HOST_TOOLS = (("packer", "packer"), ("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
              ("xorriso", "xorriso"), ("ssh-keygen", "openssh-client"), ("ssh", "openssh-client"))
MIN_QEMU = (5, 2)  # -accel, and qemu-img's -F for backing files
BUILD_USER = "packer"
VERIFY_USER = "kiln"


@dataclass(frozen=True)
class Tools:
    """Versions of the tools that take part in every bake key."""

    packer: tuple[int, int, int]
    ansible_core: str

    @classmethod
    def detect(cls) -> Tools:
        """Check the host tools once, before anything starts."""
        from ansible.release import __version__ as ansible_version

        missing = [(tool, package) for tool, package in HOST_TOOLS if shutil.which(tool) is None]
        if missing:
            raise ToolMissing(f"missing host tools: {', '.join(t for t, _ in missing)}",
                              hint=f"install them: apt-get install {' '.join(p for _, p in missing)} (or ./setup.sh)")
        proc.require_version(["qemu-system-x86_64", "--version"], "QEMU", MIN_QEMU,
                             hint="install a newer one: apt-get install qemu-system-x86 qemu-utils (or ./setup.sh)")
        return cls(packer=packer.version(), ansible_core=ansible_version)

    def values(self, target: str) -> dict[str, str]:
        """The tool part of every bake key."""
        return {"packer": ".".join(map(str, self.packer)), "ansible-core": self.ansible_core, "target": target}


@dataclass(frozen=True)
class Git:
    """The project's commit and whether the work tree differs from it."""

    commit: str
    dirty: bool

    @classmethod
    def of(cls, root: Path) -> Git:
        """Read from ``git``; a project outside git is ``unknown`` and dirty."""
        try:
            commit = proc.capture(["git", "-C", str(root), "rev-parse", "HEAD"]).strip()
            dirty = bool(proc.capture(["git", "-C", str(root), "status", "--porcelain"]).strip())
        except CommandFailed:
            return cls(commit="unknown", dirty=True)
        return cls(commit=commit, dirty=dirty)


@dataclass
class Run:
    """Everything one ``invoke bake`` shares across its layers."""

    paths: config.Paths
    project: config.Project
    catalog: catalog_mod.Catalog
    reporter: Reporter
    tools: Tools
    git: Git
    run_id: str
    verbose: bool = False
    target: str = "local"
    rows: list[Row] = field(default_factory=list)
    aws: Any = None  # bake_aws.AwsContext on the aws target
    security_updates: bool = False
    hooks: tuple[Callable[[str, str, Reporter], None], ...] = ()  # called before each step: (step, image, reporter)
    _updates: Any = None

    def update_checker(self) -> Any:
        """Pending-update check against the Debian indexes (loaded once per run), or None."""
        if not self.security_updates:
            return None
        if self._updates is None:
            self._updates = security_checker(self.project.root, self.paths.cache, self.reporter)
        return self._updates or None

    def planner(self) -> plan_mod.Planner:
        """The bake-key planner for this run's project, catalog, tools and target."""
        common = {"project": self.project, "catalog": self.catalog,
                  "tool_values": self.tools.values(self.target), "updates": self.update_checker()}
        if self.target == "aws":
            return plan_mod.Planner(**common, foundation=self.aws.source_ami, region=self.aws.settings.region)
        return plan_mod.Planner(**common)

    @property
    def log_dir(self) -> Path:
        """This run's log folder."""
        return self.paths.logs / self.run_id


def security_checker(root: Path, cache: Path, reporter: Reporter | None) -> Any:
    """The update check for the foundation's apt sources; False (and a line saying why) when unavailable."""
    from pipeline import updates

    try:
        recipe = foundation.Recipe.load(root / "packer" / "foundation")
        return updates.checker(recipe.sources, cache / "debian-indexes")
    except KilnError as exc:
        if reporter:
            reporter.line(f"security updates: not checked ({exc.message})")
        return False


@dataclass
class Layer:
    """State of one layer's bake, handed from step to step."""

    spec: config.ImageSpec
    version: str
    parent: catalog_mod.ImageRecord | None
    source_image: Path | str
    parent_label: str
    inputs: inputs.Inputs
    log_dir: Path
    scratch: Path
    git: Git
    spec_digest: str = ""
    built: Path | None = None
    artifact: catalog_mod.Artifact | None = None
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    amis: dict[str, str] = field(default_factory=dict)
    phase: str = ""  # where inside the current step (verify: boot, idempotence, specs), for the interrupt line

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.spec.name}@{self.version}"

    def identity(self) -> dict[str, str]:
        """What the image says about itself (/etc/image-release) and specs expect."""
        return {"image_name": self.spec.name, "image_version": self.version,
                "image_parent": self.parent_label, "git_commit": self.git.commit,
                "git_dirty": str(self.git.dirty).lower()}


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxx``: sortable and unique."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# -- steps -------------------------------------------------------------------

def common_packer_variables(run: Run, layer: Layer) -> dict[str, object]:
    """The Packer variables every target's build has: the layer, its playbook, where the manifest goes."""
    identity = layer.identity()
    return {
        "image_name": layer.spec.name,
        "image_version": layer.version,
        "source_image": str(layer.source_image),
        "output_dir": str(layer.scratch / "out"),
        "manifest_path": str(layer.scratch / "manifest.json"),
        "run_id": run.run_id,
        "playbook": str(layer.spec.playbook),
        "ansible_command": str(Path(sys.executable).parent / "ansible-playbook"),
        "ansible_env_vars": [f"{k}={v}" for k, v in verify.ansible_env(run.project.root).items()],
        "ansible_extra_vars": json.dumps({f"kiln_{k}": v for k, v in identity.items()}),
        "finalize_script": str(run.project.root / "packer" / "finalize.sh"),
    }


def packer_variables(run: Run, layer: Layer, access: seed.Access) -> dict[str, object]:
    """The Packer variables of one layer's local build (checked against the templates before use)."""
    return {
        **common_packer_variables(run, layer),
        "use_backing_file": layer.parent is not None,
        "ssh_username": access.user,
        "ssh_private_key_file": str(access.key),
        "seed_files": [str(f) for f in access.seed_files],
        "accelerator": vm.accelerator(),
        "serial_log": str(layer.log_dir / "build-serial.log"),
    }


def step_build(run: Run, layer: Layer) -> None:
    """Packer builds the layer on its source image with the layer's playbook."""
    access = seed.make_access(layer.scratch / "build-access", BUILD_USER, f"build-{run.run_id}", "kiln-build")
    # Only the public half is kept: the specs check that it is gone from the image.
    (layer.log_dir / "build-key.pub").write_text(access.public_key + "\n")
    template_dir = run.project.root / "packer" / "image"
    variables = packer_variables(run, layer, access)
    templates.check_plan(template_dir, variables)
    var_file = packer.write_var_file(layer.scratch / "build.pkrvars.json", variables)
    log = layer.log_dir / "packer.log"

    def tick(elapsed: float) -> None:
        run.reporter.line(f"{layer.ref}: build … {fmt_seconds(elapsed)} {last_activity(log)}".rstrip())

    # Packer's own temporary files (the seed ISO, plugin sockets) go to a folder removed in every case.
    with proc.short_tmpdir() as tmp:
        inv = packer.build_invocation(template_dir=template_dir, var_file=var_file, only=packer.SOURCES[run.target],
                                      workdir=layer.log_dir, cache=run.paths.cache / "packer", env={"TMPDIR": str(tmp)})
        try:
            result = proc.run(inv, log, check=False, stream=run.verbose, tick=None if run.verbose else tick,
                              tick_every=60.0)
        finally:
            proc.kill_stray(f"{tmp}/")  # anything Packer started that left its process group (its inventory is here)
    if result.returncode != 0:
        raise BuildFailed(f"{layer.ref}: packer build failed (exit {result.returncode}): {packer_failure(log)}",
                          log=log)
    output = packer.read_manifest(layer.scratch / "manifest.json")
    images = [f for f in output.files if f.suffix == ".qcow2"]
    if not images:
        raise BuildFailed(f"{layer.ref}: Packer's manifest lists no qcow2 file", log=log)
    layer.built = images[0]


def last_activity(log: Path) -> str:
    """What the build is doing now, from the tail of Packer's log (for progress only)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16384))
            tail = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(tail):
        if "TASK [" in line:
            return "(" + line.split("TASK [", 1)[1].split("]", 1)[0] + ")"
        if "==> " in line:
            return "(" + line.split("==> ", 1)[1].split(": ", 1)[-1].strip()[:60] + ")"
    return ""


def packer_failure(log: Path) -> str:
    """The most telling line of a failed Packer run (a full disk, the Ansible task, or Packer's error)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    if any("no space left on device" in ln.lower() for ln in lines):
        return ("the disk is full (no space left on device) — free space where KILN_HOME is, "
                "or point KILN_HOME elsewhere")
    task = next((ln for ln in reversed(lines) if "TASK [" in ln), "")
    fatal = next((ln for ln in reversed(lines) if "fatal:" in ln or "[ERROR]" in ln), "")
    if fatal:
        name = task.split("TASK [", 1)[1].split("]", 1)[0] if task else "?"
        return f"task [{name}] failed"
    err = next((ln for ln in reversed(lines) if "errored" in ln or "Error" in ln), "")
    return err.split("ui error,", 1)[-1].strip()[:200] or "see the log"


def step_store(run: Run, layer: Layer) -> None:
    """Move the built image to its content-addressed path and attach it to the record."""
    assert layer.built is not None
    artifact_id, path = store.put(run.paths.store, layer.built, layer.spec.name, layer.version)
    layer.artifact = catalog_mod.Artifact(target="local", id=artifact_id, path=str(path))
    run.catalog.add_artifact(layer.spec.name, layer.version, layer.artifact)


def forwards_of(run: Run, layer: Layer) -> dict[str, int]:
    """Ports the image and its ancestors ask to reach from the host while verifying."""
    forwards: dict[str, int] = {}
    for spec in run.project.lineage(layer.spec.name):
        forwards.update(spec.forward)
    return forwards


def step_verify(run: Run, layer: Layer) -> None:
    """Boot a throwaway overlay; the playbook must change nothing, then the specs must pass."""
    assert layer.artifact is not None and layer.artifact.path is not None
    layer.phase = "boot"
    with vm.boot(Path(layer.artifact.path), layer.scratch / "verify", layer.log_dir, forwards=forwards_of(run, layer),
                 user=VERIFY_USER, name="verify") as guest:
        check_guest(run, layer, guest)


def check_guest(run: Run, layer: Layer, guest: vm.Guest) -> None:
    """The gate, on a running guest of the image: idempotence, then specs; records the verdict's evidence."""
    lineage = run.project.lineage(layer.spec.name)
    identity = layer.identity()
    build_key = layer.log_dir / "build-key.pub"
    if build_key.exists():
        identity["build_public_key"] = build_key.read_text().strip()
    layer.phase = "idempotence"
    run.reporter.line(f"{layer.ref}: verify: VM up, checking idempotence")
    idem = verify.idempotence(guest, project=run.project.root, playbook=layer.spec.playbook,
                              extravars={f"kiln_{k}": v for k, v in layer.identity().items()},
                              work=layer.log_dir / "idempotence", stream=run.verbose)
    if not idem.ok:
        write_report(layer, "failed", idempotence=idem)
        run.catalog.record_verification(layer.spec.name, layer.version, spec_digest=layer.spec_digest,
                                        ok=False, report=str(layer.report))
        what = (f"changed on a second run: {', '.join(idem.changed_tasks)}" if idem.changed_tasks
                else f"failed on a second run: {', '.join(idem.failed_tasks)}")
        raise VerificationFailed(f"{layer.ref}: not idempotent — {what}", log=idem.log)
    layer.phase = "specs"
    run.reporter.line(f"{layer.ref}: verify: idempotent; running specs")
    result = verify.specs(guest, spec_dirs=[spec.specs for spec in lineage], identity=identity, work=layer.log_dir,
                          stream=run.verbose)
    packages = verify.package_manifest(guest) if result.ok else []
    verify.write_json(layer.log_dir / "packages.json", packages)
    write_report(layer, "verified" if result.ok else "failed", idempotence=idem, specs=result)
    run.catalog.record_verification(layer.spec.name, layer.version, spec_digest=layer.spec_digest, ok=result.ok,
                                    report=str(layer.report))
    if result.ok:
        run.catalog.record_packages(layer.spec.name, layer.version, packages)
    if not result.ok:
        raise VerificationFailed(
            f"{layer.ref}: {len(result.failures)} of {result.tests} spec(s) failed: "
            f"{', '.join(result.failures[:3])} (junit: {result.junit})", log=result.log)


def write_report(layer: Layer, status: str, *, idempotence: verify.IdempotenceResult | None = None,
                 specs: verify.SpecResult | None = None) -> None:
    """The verification report the catalog points at."""
    doc: dict[str, object] = {"image": layer.spec.name, "version": layer.version, "status": status}
    if idempotence:
        doc["idempotence"] = {"ok": idempotence.ok, "changed": list(idempotence.changed_tasks),
                              "failed": list(idempotence.failed_tasks), "log": str(idempotence.log)}
    if specs:
        doc["specs"] = {"ok": specs.ok, "tests": specs.tests, "failures": list(specs.failures),
                        "junit": str(specs.junit), "log": str(specs.log)}
    layer.report = verify.write_json(layer.log_dir / "report.json", doc)


def step_record(run: Run, layer: Layer) -> None:
    """Only now does the catalog call the version verified."""
    run.catalog.set_status(layer.spec.name, layer.version, "verified",
                           report=str(layer.report) if layer.report else None)


STEPS: tuple[tuple[str, Callable[[Run, Layer], None]], ...] = (
    ("build", step_build),
    ("store", step_store),
    ("verify", step_verify),
    ("record", step_record),
)


# -- orchestration -------------------------------------------------------------

@contextlib.contextmanager
def image_lock(run: Run, name: str) -> Iterator[None]:
    """One bake of an image at a time on this machine; a second one waits, then re-plans."""
    folder = run.paths.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            run.reporter.line(f"{name}: another bake of {name} is running on this machine; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def source_for(run: Run, spec: config.ImageSpec) -> tuple[catalog_mod.ImageRecord | None, Path, str]:
    """What a layer starts from: its parent's verified artifact, or the foundation."""
    if spec.parent is None:
        recipe = foundation.Recipe.load(run.project.root / "packer" / "foundation")
        started = time.monotonic()
        try:
            path = foundation.ensure(recipe, run.paths.cache, run.log_dir / "foundation.log",
                                     progress=lambda msg: run.reporter.line(f"foundation: {msg}"))
        except KeyboardInterrupt as exc:
            exc.where = f"during the foundation build, before {spec.name} (nothing of it was kept)"  # type: ignore[attr-defined]
            raise
        if time.monotonic() - started > 1:
            run.reporter.line(f"foundation: ready ({fmt_seconds(time.monotonic() - started)}) {path}")
        return None, path, f"foundation@{recipe.digest().split(':', 1)[1][:12]}"
    parent = run.catalog.latest(spec.parent)
    art = parent.artifact("local") if parent else None
    if parent is None or art is None or art.path is None or not Path(art.path).exists():
        raise KilnError(f"{spec.name}: no verified {spec.parent} image to build on",
                        hint=f"run: invoke bake {spec.parent}")
    return parent, Path(art.path), parent.ref


def run_steps(run: Run, layer: Layer, steps: tuple[tuple[str, Callable[[Run, Layer], None]], ...],
              final_status: str) -> Row:
    """Run ``steps``; whatever happens, the scratch folder goes and the record leaves ``building``."""
    started = time.monotonic()
    status = "interrupted"
    step_name = "start"
    layer.scratch.mkdir(parents=True, exist_ok=False, mode=0o700)
    try:
        for step_name, step in steps:
            for hook in run.hooks:
                hook(step_name, layer.spec.name, run.reporter)
            t0 = time.monotonic()
            run.reporter.line(f"{layer.ref}: {step_name} …")
            step(run, layer)
            layer.timings[step_name] = time.monotonic() - t0
            run.reporter.line(f"{layer.ref}: {step_name} done ({fmt_seconds(layer.timings[step_name])})")
        status = final_status
    except KilnError as exc:
        status = "failed"
        exc.message = f"{exc.message} [step: {step_name}]"
        raise
    except KeyboardInterrupt as exc:
        phase = f" ({layer.phase})" if layer.phase and step_name == "verify" else ""
        exc.where = f"during {step_name}{phase} of {layer.ref}"  # type: ignore[attr-defined]
        raise
    except Exception:
        status = "failed"
        raise
    finally:
        shutil.rmtree(layer.scratch, ignore_errors=True)
        if status not in (final_status, "verified"):
            with contextlib.suppress(Exception):
                run.catalog.set_status(layer.spec.name, layer.version, status, reason=f"{status} at {step_name}",
                                       report=str(layer.report) if layer.report else None)
        verify.write_json(layer.log_dir / "timings.json", {"status": status, "steps": layer.timings,
                                                           "total": time.monotonic() - started})
        art = (layer.artifact.path if layer.artifact else "") or ", ".join(
            f"{r}:{a}" for r, a in sorted(layer.amis.items()))
        run.rows.append(Row(layer.spec.name, layer.version, status, time.monotonic() - started, art or ""))
    return run.rows[-1]


def resumable(run: Run, spec: config.ImageSpec, key: str) -> catalog_mod.ImageRecord | None:
    """An earlier attempt of exactly this bake that stopped after its image was stored.

    Called under the image's lock, so a ``building`` record is a bake that was
    killed outright; one whose image never reached the store is marked
    ``interrupted`` here.
    """
    found = None
    for rec in run.catalog.versions(spec.name):
        if rec.fingerprint != key or rec.status not in ("interrupted", "building"):
            continue
        art = rec.artifact("local")
        if art is not None and art.path and Path(art.path).exists():
            found = rec
        elif rec.status == "building":
            run.catalog.set_status(spec.name, rec.version, "interrupted", reason="left behind by a killed bake")
    return found


def resume_layer(run: Run, spec: config.ImageSpec, rec: catalog_mod.ImageRecord, decision: plan_mod.Decision) -> Row:
    """Verify (not rebuild) an image an interrupted bake already built and stored."""
    art = rec.artifact("local")
    assert art is not None and art.path
    run.catalog.resume(spec.name, rec.version, reason=f"resumed by run {run.run_id}: its image was already stored")
    values = rec.inputs.get("values", {}) if isinstance(rec.inputs, dict) else {}
    label = (f"{rec.parent[0]}@{rec.parent[1]}" if rec.parent
             else f"foundation@{str(values.get('foundation', ':')).split(':', 1)[1][:12]}")
    parent = run.catalog.get(*rec.parent) if rec.parent else None
    log_dir = Path(rec.log_dir) if rec.log_dir else run.log_dir / f"{spec.name}-{rec.version}"
    log_dir.mkdir(parents=True, exist_ok=True)
    layer = Layer(spec=spec, version=rec.version, parent=parent, source_image=Path(art.path), parent_label=label,
                  inputs=decision.inputs or inputs.Inputs({}, {}), log_dir=log_dir,
                  scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=Git(rec.git_commit, rec.git_dirty),
                  spec_digest=decision.spec_digest, artifact=art)
    run.reporter.line(f"{layer.ref}: resume — an earlier bake built and stored it; verifying, not rebuilding "
                      f"(logs {log_dir})")
    return run_steps(run, layer, (("verify", step_verify), ("record", step_record)), "verified")


def bake_layer(run: Run, spec: config.ImageSpec, decision: plan_mod.Decision) -> Row:
    """Bake one layer through STEPS; the catalog record ends verified, failed or interrupted."""
    parent, source, parent_label = source_for(run, spec)
    found = decision.inputs or run.planner().inputs_for(spec, parent)
    forced = bool(decision.reasons) and decision.reasons[0].startswith("forced")
    earlier = None if forced else resumable(run, spec, found.key)
    if earlier is not None:
        return resume_layer(run, spec, earlier, decision)
    version = run.catalog.begin_bake(
        name=spec.name, parent=(parent.name, parent.version) if parent else None, fingerprint=found.key,
        git_commit=run.git.commit, git_dirty=run.git.dirty, run_id=run.run_id, log_dir="",
        inputs=found.to_json())
    log_dir = run.log_dir / f"{spec.name}-{version}"
    log_dir.mkdir(parents=True, exist_ok=True)
    verify.write_json(log_dir / "inputs.json", found.to_json())
    run.catalog.set_log_dir(spec.name, version, str(log_dir))
    layer = Layer(spec=spec, version=version, parent=parent, source_image=source, parent_label=parent_label,
                  inputs=found, log_dir=log_dir, scratch=run.paths.runs / f"{run.run_id}-{spec.name}",
                  git=run.git, spec_digest=decision.spec_digest)
    run.reporter.line(f"{layer.ref}: bake on {parent_label} — {'; '.join(decision.reasons)} "
                      f"(key {found.key[7:19]}, logs {log_dir})")
    return run_steps(run, layer, STEPS, "verified")


def step_reverify_record(run: Run, layer: Layer) -> None:
    """A re-verification that passed leaves the version verified (it already is)."""


def reverify_layer(run: Run, spec: config.ImageSpec, decision: plan_mod.Decision) -> Row:
    """Verify an existing version again with the current specs; a failure marks it failed."""
    rec = decision.current
    assert rec is not None
    art = rec.artifact("local")
    if art is None or art.path is None or not Path(art.path).exists():
        raise KilnError(f"{rec.ref}: its image file is missing, cannot re-verify", hint=f"invoke bake {spec.name} "
                        "--force")
    log_dir = run.log_dir / f"{spec.name}-{rec.version}-reverify"
    log_dir.mkdir(parents=True, exist_ok=True)
    build_key = Path(rec.log_dir) / "build-key.pub"
    if build_key.exists():
        shutil.copyfile(build_key, log_dir / "build-key.pub")
    values = rec.inputs.get("values", {}) if isinstance(rec.inputs, dict) else {}
    label = (f"{rec.parent[0]}@{rec.parent[1]}" if rec.parent
             else f"foundation@{str(values.get('foundation', ':')).split(':', 1)[1][:12]}")
    layer = Layer(spec=spec, version=rec.version, parent=None, source_image=Path(art.path), parent_label=label,
                  inputs=decision.inputs or inputs.Inputs({}, {}), log_dir=log_dir,
                  scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=Git(rec.git_commit, rec.git_dirty),
                  spec_digest=decision.spec_digest, artifact=art)
    run.reporter.line(f"{layer.ref}: re-verify — {'; '.join(decision.reasons)} (logs {log_dir})")
    try:
        return run_steps(run, layer, (("verify", step_verify), ("record", step_reverify_record)), "verified")
    except VerificationFailed as exc:
        with contextlib.suppress(Exception):
            run.catalog.set_status(spec.name, rec.version, "failed", reason="re-verification failed",
                                   report=str(layer.report) if layer.report else None)
        exc.message += f"; {layer.ref} is now recorded failed"
        raise


def bake(run: Run, names: Sequence[str], *, force: Sequence[str] = ()) -> list[plan_mod.Decision]:
    """Bake ``names`` and whatever they are built on, in dependency order, exactly what is outdated.

    Each image is decided again under its lock, so a bake that waited for another
    finds that bake's result up to date.
    """
    planner = run.planner()
    first = planner.plan(names, force=force)
    if any(d.action == plan_mod.BAKE for d in first):
        # Before anything is recorded: a template that does not parse fails here, with file:line.
        templates.variables(run.project.root / "packer" / "image")
    for decision in first:
        if decision.action != plan_mod.UP_TO_DATE:
            run.reporter.line(decision.describe())
    if any(d.action == plan_mod.BAKE for d in first) and packer.prepare(
            run.tools.packer, run.project.root / "packer" / "plugins.pkr.hcl", run.log_dir / "packer-init.log",
            cache=run.paths.cache / "packer"):
        run.reporter.line("packer init: plugins installed (Packer >= 1.7)")
    done: list[plan_mod.Decision] = []
    for initial in first:
        spec = run.project.get(initial.image)
        try:
            with image_lock(run, spec.name):
                decision = planner.decide(spec, parent_action=None, force=spec.name in force)
                if decision.action == plan_mod.UP_TO_DATE:
                    run.reporter.say(decision.describe())
                elif run.target == "aws":
                    from pipeline import bake_aws

                    if decision.action == plan_mod.BAKE:
                        bake_aws.bake_layer(run, spec, decision)
                    else:
                        bake_aws.reverify_layer(run, spec, decision)
                elif decision.action == plan_mod.REVERIFY:
                    reverify_layer(run, spec, decision)
                else:
                    bake_layer(run, spec, decision)
        except KeyboardInterrupt as exc:
            if not getattr(exc, "where", ""):
                exc.where = f"before {spec.name} started (planning, or waiting for its lock)"  # type: ignore[attr-defined]
            raise
        done.append(decision)
    return done
