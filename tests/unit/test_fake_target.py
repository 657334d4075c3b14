"""A target is one module: a third target, registered here, bakes a two-layer chain through the real orchestrator.

The fake target builds a text file instead of an image and verifies on this
machine itself (Ansible's local connection, testinfra's local backend), so the
real gate runs: the playbook's second run must change nothing, the specs of
the image and its parent must pass, and only then is a version recorded
verified and ``latest`` published — through the target, never by its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline import targets
from pipeline.app import baking
from pipeline.bake.layer import Earlier, Layer, Source
from pipeline.bake.run import Run
from pipeline.catalog import Artifact, Catalog, ImageRecord
from pipeline.config import ImageSpec, Paths
from pipeline.targets.base import Leftover
from tests.conftest import ROOT

PUBLISHED: list[str] = []
MIRROR: dict[tuple[str, str], str | None] = {}  # where the fake target's deployers read channels


class LocalMachine:
    """This machine as the guest: Ansible's local connection, testinfra's local backend."""

    def ansible_host(self) -> dict[str, Any]:
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}

    def testinfra_args(self) -> tuple[str, ...]:
        return ("--hosts=local://",)

    def environment(self) -> dict[str, str]:
        return {}

    def command(self, *argv: str) -> list[str]:
        return list(argv)


class FakeBuilder:
    name = "scribe"
    template_sources: tuple[str, ...] = ()
    key_files: tuple[str, ...] = ("scribe.conf",)

    def __init__(self, target: Any) -> None:
        self.target = target

    def tool_values(self) -> dict[str, str]:
        return {"scribe": "1.0"}

    def prepare(self, run: Run) -> None:
        pass

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        out = layer.scratch / f"{layer.spec.name}.img"
        out.write_text(f"{layer.spec.name} {layer.version} on {layer.source.location}\n")
        return {"file": str(out)}

    def evidence(self, log_dir: Path) -> Mapping[str, str]:
        return {}


class FakeTarget:
    name = "fake"
    builders = {"scribe": FakeBuilder}
    step_labels = {"store": "file"}
    default_builder = ""
    default_jobs = 1

    def __init__(self, paths: Paths, *, region: str = "") -> None:
        self.paths = paths

    @classmethod
    def check_settings(cls, root: Path) -> None:
        pass

    def connect(self) -> None:
        pass

    def open_catalog(self, *, create: bool = True) -> Catalog:
        return Catalog.open(self.paths.catalog, create=create)

    def foundation_value(self) -> str:
        return "fake-foundation-1"

    def foundation_change(self, old: str, new: str) -> str:
        return f"fake foundation {old} → {new}"

    def root_label(self, foundation_value: str) -> str:
        return f"scratch@{foundation_value}"

    def artifact_of(self, record: ImageRecord) -> Artifact | None:
        return record.artifact(self.name)

    def source(self, run: Run, spec: ImageSpec) -> Source:
        if spec.parent is None:
            return Source(None, self.foundation_value(), self.root_label(self.foundation_value()))
        parent = run.catalog.latest(spec.parent)
        assert parent is not None
        return Source(parent, self.artifact_of(parent).id, parent.ref)  # type: ignore[union-attr]

    def find_earlier(self, run: Run, spec: ImageSpec, key: str) -> Earlier | None:
        return None

    def store(self, run: Run, layer: Layer) -> tuple[Artifact, ...]:
        built = Path(layer.built["file"])
        digest = hashlib.sha256(built.read_bytes()).hexdigest()
        kept = self.paths.home / "fake-store" / f"{digest}.img"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(built, kept)
        return (Artifact(target=self.name, id=f"sha256:{digest}", path=str(kept)),)

    def usable(self, record: ImageRecord) -> tuple[Artifact, ...]:
        return tuple(a for a in record.artifacts if a.target == self.name)

    def intact(self, record: ImageRecord) -> None:
        assert all(Path(a.path or "").exists() for a in record.artifacts)

    interrupt_boot = False  # a test sets it: Ctrl-C while the guest boots
    interrupt_image = ""  # or only while this image's guest boots
    boot_error: Exception | None = None  # or the world fails the boot (no capacity, an SSH timeout)

    @contextlib.contextmanager
    def guest(self, run: Run, layer: Layer) -> Iterator[LocalMachine]:
        assert layer.artifacts and Path(layer.artifacts[0].path or "").exists()
        if FakeTarget.interrupt_boot or layer.spec.name == FakeTarget.interrupt_image:
            raise KeyboardInterrupt
        if FakeTarget.boot_error is not None:
            raise FakeTarget.boot_error
        yield LocalMachine()

    def publish(self, catalog: Catalog, images: Collection[str] | None = None, *, dry_run: bool = False) -> list[str]:
        """Mirror the catalog's channels into MIRROR, a line per channel that differed."""
        lines = []
        for name in sorted(images if images is not None else {r.name for r in catalog.versions()}):
            for channel, version in catalog.channels(name).items():
                if MIRROR.get((name, channel)) != version:
                    lines.append(f"fake: {name}/{channel} → {version}")
                    if not dry_run:
                        MIRROR[(name, channel)] = version
        PUBLISHED.extend([] if dry_run else lines)
        return lines

    def default_region(self, region: str) -> str | None:
        return None

    def in_use(self, catalog: Catalog) -> Mapping[str, str]:
        return {}

    def delete(self, catalog: Catalog, doomed: Sequence[Any]) -> list[str]:
        return []

    def leftovers(self, older_than: timedelta, statuses: Any) -> list[Leftover]:
        return []

    def clean(self, leftovers: Sequence[Leftover]) -> list[str]:
        return []

    def scope(self) -> str:
        return "nowhere"


PLAYBOOK = """---
- name: {name}
  hosts: all
  gather_facts: false
  tasks:
    - name: The image knows who it is
      ansible.builtin.assert:
        that: kiln_image_name == "{name}"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "playbooks").mkdir(parents=True)
    shutil.copy(ROOT / "playbooks" / "ansible.cfg", root / "playbooks" / "ansible.cfg")
    (root / "kiln.toml").write_text('[images.trunk]\n\n[images.branch]\nparent = "trunk"\n')
    (root / "scribe.conf").write_text("ink = black\n")
    for name in ("trunk", "branch"):
        (root / "playbooks" / f"{name}.yml").write_text(PLAYBOOK.format(name=name))
        (root / "specs" / name).mkdir(parents=True)
    (root / "specs" / "trunk" / "test_trunk.py").write_text(
        "import os\n\ndef test_identity_reaches_the_specs(host):\n"
        "    assert os.environ['KILN_IMAGE_NAME'] in ('trunk', 'branch')\n    assert host.file('/').is_directory\n")
    (root / "specs" / "branch" / "test_branch.py").write_text(
        "import os\n\ndef test_built_on_trunk():\n    assert os.environ['KILN_IMAGE_PARENT'].startswith('trunk@')\n")
    for key, value in (("KILN_PROJECT", root), ("KILN_HOME", tmp_path / "home"), ("KILN_CACHE", tmp_path / "cache")):
        monkeypatch.setenv(key, str(value))
    monkeypatch.setitem(targets.TARGETS, "fake", FakeTarget)
    PUBLISHED.clear()
    MIRROR.clear()
    return root


def test_a_registered_target_bakes_a_chain_through_the_real_orchestrator(project, tmp_path):
    result = baking.bake("branch", target="fake")
    assert [(r.image, r.status) for r in result.rows] == [("trunk", "verified"), ("branch", "verified")]
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        trunk, branch = cat.latest("trunk"), cat.latest("branch")
        assert trunk is not None and branch is not None
        assert branch.parent == ("trunk", trunk.version)
        [trunk_art], [branch_art] = trunk.artifacts, branch.artifacts
        assert trunk_art.target == branch_art.target == "fake"
        # The builder started the child from the parent's artifact, as the target said.
        assert Path(branch_art.path).read_text().endswith(f"on {trunk_art.id}\n")
        assert trunk.inputs["values"]["builder"] == "scribe" and trunk.inputs["values"]["target"] == "fake"
        for rec in (trunk, branch):
            assert cat.last_verification(rec.name, rec.version)["ok"] is True
            junit = (Path(rec.log_dir) / "junit.xml").read_text()
            assert 'failures="0"' in junit and 'errors="0"' in junit
            steps = json.loads((Path(rec.log_dir) / "timings.json").read_text())["steps"]
            # Verification's phases are timed too, and lie within the verify step.
            phases = [steps[f"verify {p}"] for p in ("boot", "idempotence", "specs")]
            assert steps["build"] >= 0 and sum(phases) <= steps["verify"]
        assert "test_built_on_trunk" in (Path(branch.log_dir) / "junit.xml").read_text()
        assert [h["to"] for h in cat.status_history("branch", branch.version)] == ["building", "verified"]
    assert [f"fake: trunk/latest → {trunk.version}", f"fake: branch/latest → {branch.version}"] == PUBLISHED
    again = baking.bake("branch", target="fake")
    assert again.rows == [] and {d.action for d in again.decisions} == {"up to date"}
    # A file the builder reads (its key_files) is part of every layer's bake key.
    (project / "scribe.conf").write_text("ink = blue\n")
    changed = baking.bake("branch", target="fake")
    assert [r.image for r in changed.rows] == ["trunk", "branch"]


def test_the_gate_fails_a_bad_spec_on_any_target(project, tmp_path):
    (project / "specs" / "branch" / "test_branch.py").write_text("def test_broken():\n    assert False\n")
    with pytest.raises(Exception, match="1 of 2 spec"):
        baking.bake("branch", target="fake")
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        assert [r.status for r in cat.versions("branch")] == ["failed"]
        assert cat.latest("branch") is None and cat.latest("trunk") is not None


def test_unknown_targets_and_builders_are_named():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown target 'gcp'") as err:
        targets.check("gcp")
    assert "local" in (err.value.hint or "") and "aws" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="unknown builder 'chroot' for target fake"):
        targets.builder(FakeTarget(Paths(ROOT, ROOT, ROOT)), "chroot")  # type: ignore[arg-type]
    assert isinstance(targets.builder(FakeTarget(Paths(ROOT, ROOT, ROOT))), FakeBuilder)  # type: ignore[arg-type]


def test_ctrl_c_during_a_reverification_leaves_the_verified_version_as_it_was(project, tmp_path, monkeypatch):
    baking.bake("branch", target="fake")
    (project / "specs" / "branch" / "test_more.py").write_text("def test_more():\n    assert True is not False\n")
    monkeypatch.setattr(FakeTarget, "interrupt_boot", True)
    with pytest.raises(KeyboardInterrupt) as stopped:
        baking.bake("branch", target="fake")
    assert "during verify (boot) of branch@" in stopped.value.where  # type: ignore[attr-defined]
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        [branch] = cat.versions("branch")
        assert branch.status == "verified" and cat.channel("branch") == branch.version
        assert [h["to"] for h in cat.status_history("branch", branch.version)] == ["building", "verified"]
    monkeypatch.setattr(FakeTarget, "interrupt_boot", False)
    plan = baking.plan("branch", target="fake")
    assert [d.describe() for d in plan.decisions][-1] == "re-verify: branch — specs changed since it was verified"


def test_the_plan_tells_a_versions_real_history(project, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeTarget, "interrupt_boot", True)
    with pytest.raises(KeyboardInterrupt):
        baking.bake("trunk", target="fake")
    monkeypatch.setattr(FakeTarget, "interrupt_boot", False)
    [trunk] = baking.plan("trunk", target="fake").decisions
    assert trunk.reasons == (f"no verified version (trunk@{trunk_version(tmp_path)} is interrupted)",)


def trunk_version(tmp_path: Path) -> str:
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        return cat.versions("trunk")[-1].version


def test_an_interrupt_names_the_layers_this_run_verified(project, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeTarget, "interrupt_image", "branch")
    with pytest.raises(KeyboardInterrupt) as stopped:
        baking.bake("branch", target="fake")
    assert "during verify (boot) of branch@" in stopped.value.where  # type: ignore[attr-defined]
    assert stopped.value.verified == (f"trunk@{trunk_version(tmp_path)}",)  # type: ignore[attr-defined]
