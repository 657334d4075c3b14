"""A layer built by ``packer build``: the variables every Packer builder passes, the run, its failure line.

Both Packer builders (qemu locally, amazon-ebs on AWS) use the one template set
in ``packer/image/``; they differ only in the source they select and the
variables of that source. The plan is checked against the templates'
declarations before Packer starts, Packer's own temporary files go to a folder
removed in every case, and the build's output is read from the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline import identity, machine, packer, proc
from pipeline.bake import inputs
from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import BuildFailed, ToolMissing
from pipeline.packer import templates
from pipeline.progress import fmt_seconds
from pipeline.verify import ansible


def common_variables(run: Run, layer: Layer) -> dict[str, object]:
    """The Packer variables every builder passes: the layer, its playbook, where the manifest goes."""
    return {
        "image_name": layer.spec.name,
        "image_version": layer.version,
        "source_image": layer.source.location,
        "output_dir": str(layer.scratch / "out"),
        "manifest_path": str(layer.scratch / "manifest.json"),
        "run_id": run.run_id,
        "playbook": str(layer.spec.playbook),
        "ansible_command": str(Path(sys.executable).parent / "ansible-playbook"),
        "ansible_env_vars": [f"{k}={v}" for k, v in ansible.ansible_env(run.project.root).items()],
        "ansible_extra_vars": json.dumps({f"kiln_{k}": v for k, v in layer.identity().items()}),
        "finalize_script": str(run.project.root / "packer" / "finalize.sh"),
        # Installed as /etc/image-release in the finaliser's step (identity.py).
        "image_release": str(identity.write_release(layer.scratch / "image-release", layer.identity())),
    }


def build(run: Run, layer: Layer, *, only: str, variables: Mapping[str, object],
          env: Mapping[str, str] | None = None) -> packer.BuildOutput:
    """``packer build -only=<only>`` of the layer; BuildFailed names the telling line of Packer's log."""
    template_dir = run.project.root / "packer" / "image"
    templates.check_plan(template_dir, variables)
    var_file = packer.write_var_file(layer.scratch / "build.pkrvars.json", variables)
    log = layer.log_dir / "packer.log"

    def tick(elapsed: float) -> None:
        run.reporter.line(f"{layer.ref}: build … {fmt_seconds(elapsed)} {last_activity(log)}".rstrip())

    # Packer's own temporary files (the seed ISO, plugin sockets) go to a folder removed in every case.
    with machine.short_tmpdir(prefix=f"kiln-{run.run_id}-") as tmp:
        inv = packer.build_invocation(template_dir=template_dir, var_file=var_file, only=only, workdir=layer.log_dir,
                                      cache=run.paths.cache / "packer", env={**(env or {}), "TMPDIR": str(tmp)})
        try:
            result = proc.run(inv, log, check=False, stream=run.verbose, tick=None if run.verbose else tick,
                              tick_every=60.0)
        finally:
            machine.kill_stray(f"{tmp}/")  # anything Packer started that left its process group (its inventory is here)
    if result.returncode != 0:
        raise BuildFailed(f"{layer.ref}: packer build failed (exit {result.returncode}): {failure(log)}", log=log)
    return packer.read_manifest(layer.scratch / "manifest.json")


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


def failure(log: Path) -> str:
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


class PackerBuilder:
    """What every Packer builder shares: the host tools it needs, Packer's version in the bake key, ``packer init``.

    A subclass names its tools and builds; ``name`` is the builder's name in the bake key.
    """

    name = "packer"
    template_sources: tuple[str, ...] = ()
    key_files = inputs.TEMPLATE_FILES
    tools: tuple[tuple[str, str], ...] = (("packer", "packer"), ("ssh-keygen", "openssh-client"),
                                          ("ssh", "openssh-client"))

    def __init__(self, target: object) -> None:
        self.version = packer.MIN_VERSION

    def tool_values(self) -> dict[str, str]:
        """Every missing tool in one line; then the versions (Packer's enters the bake key)."""
        missing = [(tool, package) for tool, package in self.tools if shutil.which(tool) is None]
        if missing:
            raise ToolMissing(f"missing host tools: {', '.join(t for t, _ in missing)}",
                              hint=f"install them: apt-get install {' '.join(p for _, p in missing)} (or ./setup.sh)")
        self.check_versions()
        self.version = packer.version()
        return {"packer": ".".join(map(str, self.version))}

    def check_versions(self) -> None:
        """Versions of other tools that must be new enough (none by default)."""

    def evidence(self, log_dir: Path) -> Mapping[str, str]:
        """None: a Packer build converges once, and the gate checks idempotence in the booted image."""
        return {}

    def prepare(self, run: Run) -> None:
        """The templates parse (file:line otherwise), and modern Packer has its plugins."""
        templates.variables(run.project.root / "packer" / "image")
        if packer.prepare(self.version, run.project.root / "packer" / "plugins.pkr.hcl",
                          run.log_dir / "packer-init.log", cache=run.paths.cache / "packer"):
            run.reporter.line("packer init: plugins installed (Packer >= 1.7)")
