"""``invoke converge IMAGE``: a playbook edit tried in seconds, in a persistent chroot workspace.

The workspace (``$KILN_HOME/converge/<image>/``) is a copy-on-write child of the
image's parent's latest verified version (or of the foundation): the current
playbook is applied to it in a chroot, exactly as the chroot builder does, and
what changed is reported. With ``specs`` the image's specs that need no boot run
in the chroot too (testinfra's ansible backend over the chroot connection); the
ones marked ``booted`` are named, left for the gate. Nothing here is ever
recorded or published: the catalog never sees a workspace.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline import proc
from pipeline.bake.layer import Git
from pipeline.catalog import Catalog
from pipeline.config import Paths, Project
from pipeline.errors import KilnError
from pipeline.identity import stamp
from pipeline.targets.local import chroot, foundation
from pipeline.targets.local.chroot_builder import CHROOT_ENV, CONNECTION, Played, play
from pipeline.targets.local.integrity import CACHE_FILE, Integrity
from pipeline.verify.testinfra import SpecResult, read_junit


@dataclass(frozen=True)
class SpecsRun:
    """The specs that ran in the chroot (their JUnit verdict), and those left for the booted gate."""

    result: SpecResult
    left: tuple[str, ...]


@dataclass(frozen=True)
class Converged:
    """One converge: whether the workspace was made anew, the playbook's run, the specs' run."""

    image: str
    fresh: str  # why the workspace was made anew ("" when it was reused)
    played: Played
    specs: SpecsRun | None


def parent_disk(paths: Paths, project: Project, catalog: Catalog, image: str) -> tuple[Path, str]:
    """What the workspace starts from: the parent's latest verified image, or the foundation; and its label."""
    spec = project.get(image)
    if spec.parent is None:
        recipe = foundation.Recipe.load(project.root / "packer" / "foundation")
        disk = foundation.ensure(recipe, paths.cache, paths.logs / "foundation.log")
        return disk, f"foundation@{recipe.digest().partition(':')[2][:12]}"
    parent = catalog.latest(spec.parent)
    art = parent.artifact("local") if parent else None
    if parent is None or art is None or not art.path or not Path(art.path).exists():
        raise KilnError(f"{image}: no verified {spec.parent} image to converge on", hint=f"invoke bake {spec.parent}")
    Integrity(paths.home / CACHE_FILE).check(Path(art.path), art.id)  # a parent, like any bake's
    return Path(art.path), parent.ref


def workspace(folder: Path, base: Path, reset: bool) -> str:
    """Make the workspace a fresh child of ``base`` when asked, when new, or when its parent moved on."""
    disk, marker = folder / "workspace.qcow2", folder / "parent"
    why = ("--reset" if reset else "new" if not disk.exists() else
           "its parent changed" if marker.read_text() != str(base) else "")
    if why:
        folder.mkdir(parents=True, exist_ok=True)
        disk.unlink(missing_ok=True)
        proc.run(proc.Invocation(("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base),
                                  str(disk))), folder / "converge.log", what="qemu-img create")
        marker.write_text(str(base))
    return why


def converge(paths: Paths, project: Project, catalog: Catalog, image: str, *, reset: bool = False,
             specs: bool = False, stream: bool = False) -> Converged:
    """Apply ``image``'s playbook to its workspace (and run the specs that need no boot)."""
    spec = project.get(image)
    base, label = parent_disk(paths, project, catalog, image)
    folder = paths.home / "converge" / image
    fresh = workspace(folder, base, reset)
    git = Git.of(project.root)
    identity = {"image_name": image, "image_version": "converge", "image_parent": label, "git_commit": git.commit,
                "git_dirty": str(git.dirty).lower(), "builder": "chroot"}
    with chroot.chroot(folder / "workspace.qcow2", folder / "mnt", folder / "converge.log") as root:
        played = play(root, project.root, spec.playbook, {f"kiln_{k}": v for k, v in identity.items()},
                      folder / "runs", "converge", stream=stream)
        stamp(root, identity)
        checked = run_specs(root, project, image, identity, folder) if specs and played.ok else None
    return Converged(image, fresh, played, checked)


def run_specs(root: Path, project: Project, image: str, identity: dict[str, str], folder: Path) -> SpecsRun:
    """The specs not marked ``booted`` against the chroot; the ``booted`` ones, named."""
    dirs = [str(s.specs) for s in project.lineage(image)]
    inventory = folder / "inventory.ini"
    inventory.write_text(f"[all]\nworkspace ansible_host={root} ansible_connection={CONNECTION} "
                         "ansible_python_interpreter=/usr/bin/python3\n")
    env = {f"KILN_{k.upper()}": v for k, v in identity.items()} | CHROOT_ENV | {
        "ANSIBLE_CONFIG": str(project.root / "playbooks" / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"}
    junit = folder / "junit.xml"
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *dirs]
    ran = proc.run(proc.Invocation((*base, "-v", "--hosts=ansible://workspace", f"--ansible-inventory={inventory}",
                                    "-m", "not booted", f"--junitxml={junit}"), env=env), folder / "specs.log",
                   check=False)
    tests, failures = read_junit(junit)
    result = SpecResult(ran.returncode == 0 and tests > 0 and not failures, tests, tuple(failures), junit,
                        folder / "specs.log")
    listed = subprocess.run([*base, "--collect-only", "-q", "-m", "booted", "--hosts=local://"], capture_output=True,
                            text=True, env={**proc.Invocation((), env=env).full_env()}, check=False).stdout
    left = tuple(line.strip() for line in listed.splitlines() if "::" in line)
    return SpecsRun(result, left)
