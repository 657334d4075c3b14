"""The real local chain with Packer's qemu builder: foundation → base with Packer (a booted build VM), then app
on it with the chroot builder, each through the booted gate — QEMU, Ansible, testinfra.

Packer's path is proven once, end to end, on the layer built on the foundation; the chroot builder's child of
a Packer-built parent shows both builders' images stack. About eight minutes under software emulation; the
foundation is cached outside the clone (KILN_CACHE, default ~/.cache/kiln), images and catalog live in a
temporary KILN_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipeline import vm
from pipeline.targets.local import image_store
from tests.conftest import copy_project
from tests.integration.chain import images, invoke, probe
from tests.leftovers import left_behind, processes_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kiln-home")


def packer_base(project: Path) -> Path:
    """``project`` with base built by Packer's qemu builder (kiln.toml's per-image builder); app keeps the
    default, the chroot builder."""
    config = project / "kiln.toml"
    config.write_text(config.read_text().replace("[images.base]\n", '[images.base]\nbuilder = "packer"\n', 1))
    return project


@pytest.fixture(scope="module")
def env(home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    project = packer_base(copy_project(tmp_path_factory.mktemp("packer-project")))
    for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.name=kiln", "-c", "user.email=kiln@localhost", "commit",
                                                 "-qm", "base built by Packer"]):  # a bake records its commit
        subprocess.run(["git", *argv], cwd=project, check=True, capture_output=True)
    return {**{k: v for k, v in os.environ.items() if k != "KILN_BUILDER"}, "KILN_HOME": str(home),
            "KILN_PROJECT": str(project)}


@pytest.fixture(scope="module")
def baked(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = invoke("bake", "app", env=env)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result


@pytest.fixture(scope="module")
def export(baked, env: dict[str, str]) -> dict:
    assert baked.returncode == 0, baked.stderr
    done = invoke("catalog.export", env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_bake_app_builds_base_then_app_and_prints_a_summary(baked):
    assert baked.returncode == 0, baked.stderr
    out = baked.stdout
    assert out.index("base@") < out.index("app@")
    summary = out.splitlines()[-3:]
    assert summary[0].split()[:3] == ["IMAGE", "VERSION", "STATUS"]
    assert summary[1].split()[0] == "base" and summary[1].split()[2] == "verified"
    assert summary[2].split()[0] == "app" and summary[2].split()[2] == "verified"


def test_catalog_records_both_verified_with_lineage(export):
    assert export["schema_version"] == 1
    [base] = images(export, "base")
    [app] = images(export, "app")
    assert base["status"] == app["status"] == "verified"
    assert base["parent"] is None
    assert app["parent"] == {"name": "base", "version": base["version"]}
    assert export["channels"]["app"]["latest"] == app["version"]
    assert export["channels"]["base"]["latest"] == base["version"]
    for img in (base, app):
        assert img["fingerprint"].startswith("sha256:")
        assert img["created_at"].endswith("Z")
        assert len(img["git"]["commit"]) == 40
        [art] = img["artifacts"]
        assert art["target"] == "local" and art["region"] is None
        assert Path(art["path"]).name == f"{img['name']}-{img['version']}.qcow2"
        assert art["id"] == "sha256:" + image_store.digest_file(Path(art["path"]))


def test_app_stores_only_its_delta_on_the_base(export):
    [base] = images(export, "base")
    [app] = images(export, "app")
    base_path = base["artifacts"][0]["path"]
    app_path = app["artifacts"][0]["path"]
    assert image_store.backing_file(Path(app_path)) == base_path
    assert image_store.backing_file(Path(base_path)) is None
    assert Path(app_path).stat().st_size < Path(base_path).stat().st_size / 3


def test_each_verification_wrote_a_passing_junit_report(export):
    import xml.etree.ElementTree as ET

    for img in export["images"]:
        junit = Path(img["log_dir"]) / "junit.xml"
        root = ET.parse(junit).getroot()
        cases = list(root.iter("testcase"))
        assert cases and not [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
        if img["name"] == "app":  # a child passes its parent's specs too
            assert any("test_base" in (c.get("classname") or "") for c in cases)
        report = json.loads(Path(img["report"]).read_text())
        assert report["idempotence"]["ok"] and report["idempotence"]["changed"] == []


def test_each_layer_was_built_by_its_builder(baked, export):
    from pipeline.targets.local.chroot_builder import CONVERGED_TWICE

    [base] = images(export, "base")
    [app] = images(export, "app")
    assert (Path(base["log_dir"]) / "packer.log").exists() and not (Path(base["log_dir"]) / "chroot.log").exists()
    assert (Path(app["log_dir"]) / "chroot.log").exists() and not (Path(app["log_dir"]) / "packer.log").exists()
    # Packer converges once, so the gate ran the playbook again in base's VM; app's second converge, in the
    # chroot, was its check.
    assert not (Path(base["log_dir"]) / "idempotence" / CONVERGED_TWICE).exists()
    assert (Path(app["log_dir"]) / "idempotence" / CONVERGED_TWICE).exists()
    assert f"app@{app['version']}: verify: VM up; idempotent when built" in baked.stdout
    assert f"base@{base['version']}: verify: VM up, checking idempotence" in baked.stdout


def test_unchanged_bake_is_a_noop(export, env):
    done = invoke("bake", "app", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    [base] = images(export, "base")
    [app] = images(export, "app")
    assert lines == [f"up to date: base {base['version']} (key {base['fingerprint'][7:19]})",
                     f"up to date: app {app['version']} (key {app['fingerprint'][7:19]})"]


def test_bench_prints_the_figures(export, env, home):
    done = invoke("bench", env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    (home / "bench.txt").write_text(done.stdout)  # the figures of this run, for whoever reads the CI machine
    sys.stdout.write(done.stdout)
    assert "ratio no-op / full:" in done.stdout
    assert "catalog.resolve, 10,000 versions:" in done.stdout
    assert "integrity check of base (" in done.stdout and "remembered (median of 20)" in done.stdout
    assert "FLATTENED" in done.stdout


def test_export_validates_against_the_schema(export):
    from pipeline.catalog import validate

    validate(export)
    [app] = images(export, "app")
    names = {p["name"] for p in app["packages"]}
    assert {"nginx", "chrony", "prometheus-node-exporter"} <= names
    assert [h["to"] for h in app["status_history"]] == ["building", "verified"]


def test_plan_names_the_changed_file(export, env, tmp_path):
    project = packer_base(copy_project(tmp_path / "project"))
    penv = {**env, "KILN_PROJECT": str(project)}
    site = project / "playbooks/roles/app_service/templates/nginx-site.j2"
    site.write_text(site.read_text() + "# tuned\n")
    out = invoke("plan", "app", env=penv, timeout=120).stdout
    assert "up to date: base" in out
    assert "bake: app — inputs changed: playbooks/roles/app_service/templates/nginx-site.j2" in out
    chrony = project / "playbooks/roles/chrony/tasks/main.yml"
    chrony.write_text(chrony.read_text() + "# tuned\n")
    out = invoke("plan", "--all", env=penv, timeout=120).stdout
    assert "bake: base — inputs changed: playbooks/roles/chrony/tasks/main.yml" in out
    assert "bake: app — parent changed (base will be rebaked first)" in out
    assert out.startswith("foundation\n└── base  [bake]\n    └── app  [bake]")


def test_channels_revoke_restore_prune_on_the_real_catalog(export, env):
    [base] = images(export, "base")
    [app] = images(export, "app")
    ref = f"app@{app['version']}"
    assert invoke("promote", ref, "--channel", "prod", env=env, timeout=60).returncode == 0
    resolved = invoke("catalog.resolve", "app", "--channel", "prod", env=env, timeout=60)
    assert resolved.stdout.strip() == app["artifacts"][0]["id"]
    missing = invoke("catalog.resolve", "app", "--channel", "staging", env=env, timeout=60)
    assert missing.returncode == 1 and missing.stdout == "" and len(missing.stderr.strip().splitlines()) == 1
    revoked = invoke("revoke", f"base@{base['version']}", "--reason", "drill", env=env, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    assert f"app@{app['version']}" in revoked.stdout.splitlines()[0]  # cascaded by default for a parent
    assert "channel prod of app" in revoked.stdout
    gone = invoke("catalog.resolve", "app", "--channel", "prod", env=env, timeout=60)
    assert gone.returncode == 1
    restored = invoke("restore", f"base@{base['version']}", "--cascade", env=env, timeout=60)
    assert restored.returncode == 0, restored.stderr
    assert invoke("catalog.resolve", "app", "--channel", "prod", env=env, timeout=60).stdout.strip() == \
        app["artifacts"][0]["id"]
    dry = invoke("prune", "--keep", "1", "--dry-run", env=env, timeout=120)
    assert dry.returncode == 0 and f"keep app@{app['version']}: " in dry.stdout and "on channel prod" in dry.stdout
    from pipeline.catalog import validate

    validate(json.loads(invoke("catalog.export", env=env, timeout=60).stdout))
    page = invoke("catalog.report", "--output", str(Path(env["KILN_HOME"]) / "report"), env=env, timeout=60)
    assert page.returncode == 0 and f"app@{app['version']}" not in page.stderr
    html_text = Path(page.stdout.strip()).read_text()
    assert 'id="image-app"' in html_text and app["version"] in html_text and 'id="lineage"' in html_text


def test_plan_names_pending_security_updates_of_an_older_snapshot(export, env, home):
    """Debian's real indexes against a base whose manifest says it was baked from an older openssl."""
    from pipeline.catalog import Catalog

    [base] = images(export, "base")
    with Catalog.open(home / "catalog.db") as cat:
        packages = cat.packages("base", base["version"])
        older = [dict(p, version="3.0.0-1") if p["name"] == "openssl" else p for p in packages]
        assert older != packages, "openssl should be in the base image"
        cat.record_packages("base", base["version"], older)
        try:
            out = invoke("plan", "base", "--security-updates", env=env, timeout=600).stdout
        finally:
            cat.record_packages("base", base["version"], packages)
    assert "bake: base — security updates pending: openssl 3.0.0-1 → 3.0." in out


def test_up_boots_the_image_to_poke_at_and_down_stops_it(export, env, home):
    import re

    [app] = images(export, "app")
    done = invoke("up", f"app@{app['version']}", env=env, timeout=900)
    try:
        assert done.returncode == 0, done.stderr
        ssh = re.search(r"ssh: (ssh .*)$", done.stdout, re.M).group(1)
        release = subprocess.run([*ssh.split(), "cat", "/etc/image-release"], capture_output=True, text=True,
                                 timeout=120)
        assert f"IMAGE_VERSION={app['version']}" in release.stdout, release.stderr
        # Stamped by Kiln, not by a playbook: the bake key and the builder too.
        assert f"BAKE_KEY={app['fingerprint']}\nBUILDER=chroot\n" in release.stdout, release.stdout
        port = re.search(r"http: 127.0.0.1:(\d+)", done.stdout).group(1)
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=60).read())
        assert body["image"]["version"] == app["version"]
        again = invoke("up", "app", env=env, timeout=60)
        assert again.returncode == 1 and "already up" in again.stderr
        dry = invoke("prune", "--keep", "1", "--dry-run", env=env, timeout=120)
        assert f"keep app@{app['version']}: " in dry.stdout and "in use (by a running VM)" in dry.stdout
    finally:
        stopped = invoke("down", "app", env=env, timeout=120)
    assert stopped.stdout.strip() == "app is down"
    assert processes_of(home) == []
    assert not (home / "up" / "app").exists()


def test_two_vms_from_one_image_get_their_own_host_keys_and_machine_ids(export, tmp_path):
    import concurrent.futures

    [app] = images(export, "app")
    image = Path(app["artifacts"][0]["path"])

    def identity(n: int) -> tuple[str, str]:
        with vm.boot(image, tmp_path / f"vm{n}", tmp_path, name=f"twin{n}") as guest:
            out = subprocess.run(guest.ssh_argv("cat", "/etc/ssh/ssh_host_ed25519_key.pub", "/etc/machine-id"),
                                 capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")
        return out[0].split()[1], out[1].strip()

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        (key1, mid1), (key2, mid2) = pool.map(identity, (1, 2))
    assert key1 != key2 and mid1 != mid2 and len(mid1) == 32
    assert not (tmp_path / "vm1").exists() and not (tmp_path / "vm2").exists()  # each overlay went with its VM


def test_no_private_key_or_secret_in_what_kiln_wrote(export, home):
    written = [p for p in home.rglob("*") if p.is_file() and p.suffix != ".qcow2"]
    assert any(p.name == "packer.log" for p in written)
    for path in written:
        text = path.read_bytes()
        assert b"PRIVATE KEY" not in text, path
        assert b"AWS_SECRET_ACCESS_KEY=" not in text, path


def test_nothing_left_behind(export, home):
    assert left_behind(home) == []


def test_failing_ansible_task_names_the_task_the_role_and_the_log(export, env, home, tmp_path):
    spec = "def test_ok(host):\n    assert host.file('/etc/image-release').exists\n"
    project = packer_base(probe(tmp_path, "", spec))
    with open(project / "kiln.toml", "a") as fh:  # probe's table is the last: Packer builds it too
        fh.write('builder = "packer"\n')
    tasks = project / "playbooks" / "roles" / "probe_fail" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(
        "---\n- name: Stop the build on purpose\n  ansible.builtin.fail:\n    msg: deliberate failure\n")
    (project / "playbooks" / "probe.yml").write_text(
        "---\n- name: Probe\n  hosts: all\n  become: true\n  gather_facts: false\n"
        "  roles:\n    - role: probe_fail\n")
    result = invoke("bake", "probe", env={**env, "KILN_PROJECT": str(project)})
    sys.stdout.write(result.stdout)
    assert result.returncode == 1, result.stderr
    err_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("kiln: error:")]
    assert len(err_lines) == 1, result.stderr
    line = err_lines[0]
    assert "task [probe_fail : Stop the build on purpose] failed" in line
    log = Path(line.split("log: ", 1)[1].strip())
    assert log.name == "packer.log" and "deliberate failure" in log.read_text()
    assert "Traceback" not in result.stderr
    doc = json.loads(invoke("catalog.export", env=env, timeout=60).stdout)
    assert images(doc, "probe")[-1]["status"] == "failed"
    assert "probe" not in doc["channels"]
    assert left_behind(home) == []
