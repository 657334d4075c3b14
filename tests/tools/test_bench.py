import json
import os
import subprocess
from datetime import UTC, datetime

import pytest

from pipeline import config
from pipeline.catalog import Artifact, Catalog
from pipeline.targets.local import image_store
from tools import bench, bench_builders


def qcow2(path, backing=None, data=b""):
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        argv += ["-F", "qcow2", "-b", str(backing)]
    subprocess.run([*argv, str(path), "16M"], check=True)
    if data:
        subprocess.run(["qemu-io", "-c", f"write -P 0x5a 0 {len(data)}", str(path)], check=True,
                       capture_output=True)


def test_report_shows_step_times_and_delta_sizes(root, tmp_path):
    base_img, app_img = tmp_path / "base.qcow2", tmp_path / "app.qcow2"
    qcow2(base_img, data=b"x" * (4 << 20))
    qcow2(app_img, backing=base_img)
    assert image_store.backing_file(app_img) == str(base_img)
    paths = config.Paths(project=root, home=tmp_path / "home", cache=tmp_path / "cache")
    project = config.load(root)
    with Catalog.open(paths.catalog) as cat:
        parent = None
        for name, img, build in (("base", base_img, 190.0), ("app", app_img, 130.0)):
            log_dir = tmp_path / name
            log_dir.mkdir()
            (log_dir / "timings.json").write_text(json.dumps(
                {"status": "verified", "steps": {"build": build, "store": 0.5, "verify": 70.0}, "total": build + 71}))
            v = cat.begin_bake(name=name, parent=parent, fingerprint="sha256:f", git_commit="c", git_dirty=False,
                               run_id="r", log_dir=str(log_dir), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
            cat.set_log_dir(name, v, str(log_dir))
            cat.add_artifact(name, v, Artifact(target="local", id="sha256:x", path=str(img)))
            cat.set_status(name, v, "verified")
            parent = (name, v)
    text = bench.report(paths, project, with_headline=False)
    assert "foundation: build time not recorded" in text
    lines = text.splitlines()
    base_row = next(ln for ln in lines if ln.startswith("base ") and "3m10s" in ln)
    assert "1m10s" in base_row
    app_size = next(ln for ln in lines if ln.startswith("app ") and "MiB" in ln).split()
    stored, flattened = float(app_size[2]), float(app_size[4])
    assert stored < flattened


def test_full_bake_reads_timings(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        assert bench.full_bake(cat, "app") == (None, "never verified")
        v = cat.begin_bake(name="app", parent=None, fingerprint="k", git_commit="c", git_dirty=False, run_id="r",
                           log_dir=str(tmp_path))
        cat.set_log_dir("app", v, str(tmp_path))
        cat.set_status("app", v, "verified")
        (tmp_path / "timings.json").write_text(json.dumps({"steps": {"build": 100.0, "verify": 50.0}, "total": 151.0}))
        seconds, note = bench.full_bake(cat, "app")
    assert seconds == 151.0 and "build 1m40s" in note


def test_resolve_at_scale_runs_the_real_cli(root):
    api, cli = bench.resolve_at_scale(root, count=200, repeat=1)
    assert 0 < api < cli


def test_lease_cost_claims_and_releases_in_a_scratch_catalog(root, tmp_path):
    paths = config.Paths(project=root, home=tmp_path / "home", cache=tmp_path / "cache")
    line = bench.lease_cost(paths)
    ms = float(line.split(": ", 1)[1].split(" ms", 1)[0])
    assert line.startswith("bake lease (SQLite): ") and 0 < ms < 10_000
    assert list((tmp_path / "home").iterdir()) == []  # its scratch catalog is gone


def test_the_jobs_bench_adds_a_sibling_that_shares_apps_playbook_and_specs(root, tmp_path):
    from tools import bench_jobs

    bench_jobs.copy_project(config.Paths(project=root, home=tmp_path, cache=tmp_path), tmp_path / "project")
    project = config.load(tmp_path / "project")
    app, app2 = project.get("app"), project.get("app2")
    assert app2.parent == app.parent == "base"
    assert (app2.playbook, app2.specs) == (app.playbook, app.specs)


def test_the_builders_bench_says_where_an_app_change_spent_its_time(tmp_path):
    from tools import bench_builders

    timings = tmp_path / "timings.json"
    timings.write_text(json.dumps({"steps": {"build": 13.3, "store": 0.2, "verify boot": 41.0,
                                             "verify idempotence": 0.01, "verify specs": 38.5, "verify": 80.2}}))
    assert bench_builders.where_it_went(timings) == "build 13.3s · boot 41.0s · specs 38.5s"


def test_a_timed_command_reports_its_own_cpu_and_its_failure(root):
    wall, cpu = bench_builders.timed_cpu(["--version"], dict(os.environ), root)
    assert cpu > 0 and wall >= cpu / 2  # one process, mostly on one core
    with pytest.raises(RuntimeError, match="invoke no-such-task failed: .*No idea what 'no-such-task' is"):
        bench_builders.timed(["no-such-task"], dict(os.environ), root)


def test_the_boot_profile_names_what_to_bake_when_there_is_no_verified_image(tmp_path):
    from pipeline import config
    from pipeline.errors import KilnError
    from tools import bench_boot

    paths = config.default_paths({"KILN_HOME": str(tmp_path / "home")})
    with pytest.raises(KilnError, match="no verified local image of 'base'") as caught:
        bench_boot.report(paths, "base")
    assert caught.value.hint == "bake it first: invoke bake base"
