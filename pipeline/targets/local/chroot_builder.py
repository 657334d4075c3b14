"""The local target's chroot builder: a layer provisioned at native speed on this machine, no VM booted.

Like Netflix's Aminator and Packer's ``amazon-chroot``: a copy-on-write child
of the parent's stored image (or the foundation) is mounted here
(``chroot.chroot``), the layer's playbook runs through Ansible's chroot
connection with the same extra vars as a Packer build, then runs again and must
change nothing (Molecule's idempotence check, in the chroot), then the same
finaliser as every build leaves no build access, host keys, machine id or
cloud-init state. The child is stored like any layer, a delta on its parent.
The gate still boots it and runs the specs of the image and its ancestors.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline import identity, proc
from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import BuildFailed, KilnError, ToolMissing
from pipeline.targets.local import chroot
from pipeline.verify import ansible

# Its own, and the gate's (the image still boots in a throwaway VM to be verified).
TOOLS = (("qemu-img", "qemu-utils"), ("qemu-storage-daemon", "qemu-system-common"), ("losetup", "mount"),
         ("mount", "mount"), ("umount", "mount"), ("chroot", "coreutils"), ("qemu-system-x86_64", "qemu-system-x86"),
         ("xorriso", "xorriso"), ("ssh-keygen", "openssh-client"), ("ssh", "openssh-client"))
CONNECTION = "community.general.chroot"
HINT = "if it needs a running system (a service it just started), bake with --builder packer"
FULL = 64 << 20  # less free space than this where the layer is written: a failure is the disk being full
# Modules in a chroot: systemd is not running there. ``systemctl enable`` works offline; starting a
# service is left to the boot (ansible's systemd_service warns instead of failing on the unknown state).
CHROOT_ENV = {"SYSTEMD_OFFLINE": "1", "debian_chroot": "kiln"}
CONVERGED_TWICE = "converged-twice"  # written beside the second converge's log once it changed nothing


class ChrootBuilder:
    """Ansible in a chroot of the mounted child image."""

    name = "chroot"
    template_sources: tuple[str, ...] = ()
    key_files = ("packer/finalize.sh", "playbooks/ansible.cfg")

    def __init__(self, target: object) -> None:
        self.target = target

    def tool_values(self) -> dict[str, str]:
        """Every missing tool in one line; the chroot connection's collection version enters the bake key."""
        missing = [(tool, package) for tool, package in TOOLS if shutil.which(tool) is None]
        if missing:
            raise ToolMissing(f"missing host tools: {', '.join(t for t, _ in missing)}",
                              hint=f"install them: apt-get install {' '.join(dict.fromkeys(p for _, p in missing))} "
                                   "(or ./setup.sh)")
        if os.geteuid() != 0:
            raise ToolMissing("the chroot builder needs root (a loop device and mounts for the layer)",
                              hint="run the bake as root (sudo), or use --builder packer")
        found = importlib.util.find_spec("ansible_collections.community.general")
        if found is None or not found.submodule_search_locations:
            raise ToolMissing("the chroot builder needs Ansible's community.general collection (its chroot "
                              "connection)", hint="install the ansible package (./setup.sh)")
        manifest = Path(list(found.submodule_search_locations)[0]) / "MANIFEST.json"
        info = json.loads(manifest.read_text()).get("collection_info", {}) if manifest.exists() else {}
        return {"community.general": str(info.get("version", "unknown"))}

    def prepare(self, run: Run) -> None:
        """Nothing to install: the connection plugin comes with the ansible package."""

    def evidence(self, log_dir: Path) -> Mapping[str, str]:
        """The second converge's log, when that converge changed nothing (``CONVERGED_TWICE`` says so): the
        idempotence check of this very image, so a resumed or re-verified one is not converged again in a VM."""
        marker = log_dir / "idempotence" / CONVERGED_TWICE
        return {"idempotence": str(log_dir / "idempotence" / "idempotence.log")} if marker.exists() else {}

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        """The child qcow2, provisioned, checked idempotent and finalised; ``{"file": path}``."""
        child = layer.scratch / f"{layer.spec.name}-{layer.version}.qcow2"
        log = layer.log_dir / "chroot.log"
        proc.run(proc.Invocation(("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                                  layer.source.location, str(child))), log, what="qemu-img create")
        try:
            with chroot.chroot(child, layer.scratch / "chroot", log) as root:
                run.reporter.line(f"{layer.ref}: build: mounted, converging")
                self.converge(run, layer, root, "converge")
                run.reporter.line(f"{layer.ref}: build: converged, checking idempotence")
                self.converge(run, layer, root, "idempotence")
                (layer.log_dir / "idempotence" / CONVERGED_TWICE).write_text("the second converge changed nothing\n")
                identity.stamp(root, layer.identity())
                finalize(run.project.root / "packer" / "finalize.sh", root, log)
        except (OSError, KilnError) as exc:
            if shutil.disk_usage(layer.scratch).free < FULL:
                raise BuildFailed(f"{layer.ref}: the disk is full (no space left on device) — free space where "
                                  "KILN_HOME is, or point KILN_HOME elsewhere", log=log) from None
            if isinstance(exc, OSError):
                raise BuildFailed(f"{layer.ref}: the chroot build failed: {exc}", log=log) from None
            raise
        return {"file": str(child), **self.evidence(layer.log_dir)}

    def converge(self, run: Run, layer: Layer, root: Path, ident: str) -> None:
        """One run of the layer's playbook in the chroot; a failed task (or, the second time, a changed one)
        fails the build in one line."""
        extravars = {f"kiln_{k}": v for k, v in layer.identity().items()}
        done = play(root, run.project.root, layer.spec.playbook, extravars, layer.log_dir / ident, ident,
                    stream=run.verbose)
        if not done.ok:
            raise BuildFailed(f"{layer.ref}: {done.failure()} in the chroot", log=done.log, hint=HINT)
        if ident == "idempotence" and done.changed:
            raise BuildFailed(f"{layer.ref}: not idempotent — changed on a second run: {', '.join(done.changed)}",
                              log=done.log)


@dataclass(frozen=True)
class Played:
    """One playbook run in a chroot: the tasks that changed and failed, how it ended, its log."""

    changed: tuple[str, ...]
    failed: tuple[str, ...]
    status: str
    log: Path
    seconds: float

    @property
    def ok(self) -> bool:
        """Every task succeeded."""
        return not self.failed and self.status == "successful"

    def failure(self) -> str:
        """What went wrong, in a few words."""
        return f"task [{self.failed[0]}] failed" if self.failed else f"ansible-runner ended {self.status}"


def play(root: Path, project: Path, playbook: Path, extravars: Mapping[str, str], work: Path, ident: str, *,
         stream: bool = False) -> Played:
    """Run ``playbook`` in the chroot at ``root`` through Ansible's chroot connection (ansible-runner)."""
    started = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {"hosts": {str(root): {"ansible_connection": CONNECTION,
                                               "ansible_python_interpreter": "/usr/bin/python3"}}}}
    envvars = {**ansible.ansible_env(project), **CHROOT_ENV,
               "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
    runner = ansible.run_playbook(work, playbook, inventory=inventory, extravars=dict(extravars), envvars=envvars,
                                  quiet=not stream, ident=ident)
    changed, failed = ansible.summarize_events(list(runner.events))
    stdout = work / "artifacts" / ident / "stdout"
    log = work / f"{ident}.log"
    log.write_text(stdout.read_text() if stdout.exists() else "")
    return Played(tuple(changed), tuple(failed), str(runner.status), log, time.monotonic() - started)


def finalize(script: Path, root: Path, log: Path) -> None:
    """The finaliser every build runs, in the chroot: no build access, host keys, machine id, cloud-init state."""
    with open(script, "rb") as text, open(log, "ab") as out:
        done = subprocess.run(["chroot", str(root), "/bin/sh", "-s"], stdin=text, stdout=out,
                              stderr=subprocess.STDOUT, check=False, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                                          "KILN_FINALIZE_CHROOT": "1"})
    if done.returncode != 0:
        raise BuildFailed(f"the finaliser failed in the chroot (exit {done.returncode})", log=log)
