"""The local chain with the chroot builder (the default): foundation → base → app provisioned in a chroot of the
mounted layer, then the same gate — a throwaway VM of the stored image, every spec of the image and its ancestors.

A few minutes under software emulation; the failures that the chroot itself catches cost no boot at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.targets.local import image_store
from tests.conftest import ROOT, copy_project
from tests.integration.chain import INVOKE, images, invoke, probe
from tests.leftovers import left_behind

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kiln-chroot-home")


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "KILN_BUILDER"} | {"KILN_HOME": str(home)}


@pytest.fixture(scope="module")
def export(env: dict[str, str]) -> dict:
    baked = invoke("bake", "app", env=env)
    sys.stdout.write(baked.stdout + baked.stderr)
    assert baked.returncode == 0, baked.stderr
    assert "build: mounted, converging" in baked.stdout and "idempotent when built" in baked.stdout
    return json.loads(invoke("catalog.export", env=env, timeout=60).stdout)


def test_the_chroot_chain_passes_the_whole_gate(export, home):
    [base], [app] = images(export, "base"), images(export, "app")
    assert base["status"] == app["status"] == "verified"
    for img in (base, app):
        report = json.loads(Path(img["report"]).read_text())
        assert report["status"] == "verified" and report["specs"]["ok"] and report["specs"]["tests"] > 5
        assert report["idempotence"]["ok"] and report["idempotence"]["log"].endswith("idempotence/idempotence.log")
        assert "changed=0" in Path(report["idempotence"]["log"]).read_text()  # the second converge, in the chroot
        inputs = json.loads((Path(img["log_dir"]) / "inputs.json").read_text())
        assert inputs["values"]["builder"] == "chroot" and "packer/image/build.pkr.hcl" not in inputs["files"]
        assert "packer/finalize.sh" in inputs["files"]
    assert {"nginx", "chrony", "prometheus-node-exporter"} <= {p["name"] for p in app["packages"]}
    base_path, app_path = Path(base["artifacts"][0]["path"]), Path(app["artifacts"][0]["path"])
    assert image_store.backing_file(app_path) == str(base_path)  # a child stores only its delta
    assert app_path.stat().st_size < base_path.stat().st_size
    assert left_behind(home) == []


def test_switching_builders_changes_the_bake_key(export, env):
    same = invoke("plan", "app", env=env, timeout=120)
    assert "up to date: base" in same.stdout and "up to date: app" in same.stdout
    other = invoke("plan", "app", "--builder", "packer", env=env, timeout=120)
    assert other.returncode == 0, other.stderr
    assert "bake: base — " in other.stdout and "builder chroot → packer" in other.stdout
    assert "bake: app — parent changed (base will be rebaked first)" in other.stdout


def failed_probe(env: dict[str, str], project: Path) -> tuple[str, dict]:
    done = invoke("bake", "probe", env={**env, "KILN_PROJECT": str(project)})
    sys.stdout.write(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("kiln: error:")]
    assert "Traceback" not in done.stderr
    doc = json.loads(invoke("catalog.export", env=env, timeout=60).stdout)
    return line, images(doc, "probe")[-1]


TASK = "    - name: {name}\n      {module}\n"


def test_a_broken_spec_fails_the_bake_and_records_nothing_verified(export, env, home, tmp_path):
    line, rec = failed_probe(env, probe(tmp_path, TASK.format(name="Mark", module="ansible.builtin.copy: {content: x, "
                                                              "dest: /etc/probe, mode: '0644'}"),
                                        "def test_missing(host):\n    assert host.file('/etc/no-such-file').exists\n"))
    assert "1 of" in line and "spec(s) failed" in line and "test_missing" in line and "junit" in line
    assert rec["status"] == "failed" and Path(rec["report"]).exists() and left_behind(home) == []
    doc = json.loads(invoke("catalog.export", env=env, timeout=60).stdout)
    assert "probe" not in doc["channels"] and len(images(doc, "base")) == 1  # the verified base was reused


def test_a_task_that_always_changes_fails_in_the_chroot_without_a_boot(export, env, home, tmp_path):
    line, rec = failed_probe(env, probe(tmp_path, TASK.format(name="Always changes",
                                                              module="ansible.builtin.command: /bin/true"),
                                        "def test_ok(host):\n    assert host.file('/etc/image-release').exists\n"))
    assert "not idempotent — changed on a second run: Always changes" in line and "[step: build]" in line
    assert rec["status"] == "failed" and not (Path(rec["log_dir"]) / "verify-serial.log").exists()
    assert left_behind(home) == []


def test_a_task_that_needs_a_running_system_names_itself_and_the_packer_builder(export, env, home, tmp_path):
    task = TASK.format(name="Ask nginx", module="ansible.builtin.uri: {url: 'http://127.0.0.1:1/'}")
    line, rec = failed_probe(env, probe(tmp_path, task, "def test_ok(host):\n"
                                                        "    assert host.file('/etc/image-release').exists\n"))
    assert "task [Ask nginx] failed in the chroot" in line and "--builder packer" in line
    assert rec["status"] == "failed" and left_behind(home) == []


def test_converge_tries_a_playbook_edit_in_seconds_and_records_nothing(export, env, home, tmp_path):
    before = invoke("catalog.export", env=env, timeout=60).stdout
    project = copy_project(tmp_path / "project")
    penv = {**env, "KILN_PROJECT": str(project)}
    first = invoke("converge", "app", env=penv, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("converge: app — workspace made anew (new)")
    assert "app_service : Install nginx" in first.stdout
    again = invoke("converge", "app", env=penv, timeout=600)
    assert "converge: app — workspace reused" in again.stdout and "converge: 0 task(s) changed" in again.stdout
    playbook = project / "playbooks/app.yml"
    playbook.write_text(playbook.read_text() + "  tasks:\n    - name: Leave a note\n      ansible.builtin.copy:\n"
                                               "        content: converged\n        dest: /etc/kiln-note\n"
                                               "        mode: '0644'\n")
    edited = invoke("converge", "app", "--specs", env=penv, timeout=600)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert "converge: 1 task(s) changed" in edited.stdout and "Leave a note" in edited.stdout
    assert "specs: 8 of 8 passed in the chroot" in edited.stdout
    assert "left for the booted gate: app/test_app.py::test_health_from_the_host_reports_this_image" in edited.stdout
    fresh = invoke("converge", "app", "--reset", env=penv, timeout=600)
    assert "workspace made anew (--reset)" in fresh.stdout
    assert invoke("catalog.export", env=env, timeout=60).stdout == before  # nothing recorded, nothing published
    assert left_behind(home) == []


def test_a_new_image_from_invoke_new_is_baked_and_verified_and_its_siblings_stay_up_to_date(export, env, home,
                                                                                              tmp_path):
    project = copy_project(tmp_path / "project")
    penv = {**env, "KILN_PROJECT": str(project)}
    made = invoke("new", "tools", env=penv, timeout=120)
    assert made.returncode == 0, made.stderr
    playbook = project / "playbooks/tools.yml"
    playbook.write_text(playbook.read_text().replace(
        "    - name: Nothing yet\n      ansible.builtin.meta: noop\n",
        "    - name: Install tree\n      ansible.builtin.apt:\n        name: tree\n        state: present\n"
        "        update_cache: true\n        cache_valid_time: 3600\n"))
    (project / "specs/tools/test_tree.py").write_text(
        "def test_tree_is_installed(host):\n    assert host.package('tree').is_installed\n")
    assert invoke("validate", env=penv, timeout=600).returncode == 0
    baked = invoke("bake", "tools", env=penv)
    assert baked.returncode == 0, baked.stdout + baked.stderr
    doc = json.loads(invoke("catalog.export", env=penv, timeout=60).stdout)
    [tools] = images(doc, "tools")
    assert tools["status"] == "verified" and "tree" in {p["name"] for p in tools["packages"]}
    junit = (Path(tools["log_dir"]) / "junit.xml").read_text()
    assert "test_tree_is_installed" in junit and "test_tools_says_which_image_it_is" in junit
    assert "test_image_release_names_this_image" in junit  # base's identity spec holds: Kiln stamped it
    plan = invoke("plan", "--all", env=penv, timeout=120)
    assert "up to date: base" in plan.stdout and "up to date: app" in plan.stdout, plan.stdout
    assert left_behind(home) == []


def test_spec_only_change_reverifies_the_existing_image(export, env, tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "specs/app/test_extra.py").write_text(
        "def test_nginx_config_is_valid(host):\n    assert host.run('nginx -t').rc == 0\n")
    done = invoke("bake", "app", env={**env, "KILN_PROJECT": str(project)})
    assert done.returncode == 0, done.stderr
    [app] = images(export, "app")
    assert "up to date: base" in done.stdout
    assert "re-verify: app — specs changed since it was verified" in done.stdout
    after = json.loads(invoke("catalog.export", env=env, timeout=60).stdout)
    assert [i["version"] for i in images(after, "app")] == [app["version"]]
    reverified = next(Path(env["KILN_HOME"], "logs").glob(f"*/app-{app['version']}-reverify"))
    assert "test_nginx_config_is_valid" in (reverified / "junit.xml").read_text()
    # The build's second converge is this image's idempotence evidence: not converged again in the VM.
    assert "app@" in done.stdout and "idempotent when built" in done.stdout
    report = json.loads((reverified / "report.json").read_text())
    built = next(Path(env["KILN_HOME"], "logs").glob(f"*/app-{app['version']}/idempotence/idempotence.log"))
    assert report["idempotence"] == {"ok": True, "changed": [], "failed": [], "log": str(built)}
    assert not (reverified / "idempotence").exists()


def test_the_boot_profile_boots_the_verified_base_and_reads_its_account_from_inside(export, env):
    from pipeline import config
    from tools import bench_boot

    [base] = images(export, "base")
    out = bench_boot.report(config.default_paths(env), "base", boots=1)
    print(out)
    assert out.startswith(f"boot of base@{base['version']} until it answers (cloud-init done): median ")
    assert "Startup finished in " in out and "graphical.target @" in out  # systemd-analyze, its critical chain
    # cloud-init's account: the foundation runs two of its four stages (docs/boot-profile.md)
    assert "Starting stage: init-network" in out and "Finished stage: (modules-final)" in out
    assert "init-local" not in out and "modules-config" not in out


def test_two_bakes_at_once_build_once(export, env, home, tmp_path):
    project = copy_project(tmp_path / "project")
    site = project / "playbooks/roles/app_service/templates/nginx-site.j2"
    site.write_text(site.read_text() + "# tuned\n")
    penv = {**env, "KILN_PROJECT": str(project)}
    procs = [subprocess.Popen([INVOKE, "bake", "app"], cwd=ROOT, env=penv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL) for _ in range(2)]
    outs = [p.communicate(timeout=3600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    after = json.loads(invoke("catalog.export", env=env, timeout=60).stdout)
    apps = images(after, "app")
    assert len(apps) == 2 and [a["status"] for a in apps] == ["verified", "verified"]
    assert len(images(after, "base")) == 1
    waited = [out for out, _ in outs if "waiting for it" in out]
    assert len(waited) == 1 and f"up to date: app {apps[-1]['version']}" in waited[0]
    assert left_behind(home) == []
