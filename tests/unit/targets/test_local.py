"""The local target: its content-addressed store, what is in use, prune's deletions, the janitor's scratch."""

import fcntl
import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.catalog import Artifact, Catalog
from pipeline.cli import render
from pipeline.targets.local import image_store, upkeep
from pipeline.upkeep import prune


def test_store_is_content_addressed_and_read_only(tmp_path):
    src = tmp_path / "out.qcow2"
    src.write_bytes(b"image bytes")
    artifact_id, path = image_store.put(tmp_path / "store", src, "base", "2026.1127.141438")
    digest = hashlib.sha256(b"image bytes").hexdigest()
    assert artifact_id == f"sha256:{digest}"
    assert path == tmp_path / "store" / f"sha256-{digest}" / "base-2026.1127.141438.qcow2"
    assert path.read_bytes() == b"image bytes" and not src.exists()
    assert path.stat().st_mode & 0o222 == 0


def test_apply_deletes_files_and_keeps_records(tmp_path):
    store = tmp_path / "images"
    with Catalog.open(tmp_path / "c.db") as cat:
        versions = []
        for i in range(3):
            v = cat.begin_bake(name="app", parent=None, fingerprint="k", git_commit="c", git_dirty=False,
                               run_id="r", log_dir="/l", clock=lambda i=i: datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC))
            folder = store / f"sha256-{i:064d}"
            folder.mkdir(parents=True)
            (folder / f"app-{v}.qcow2").write_bytes(b"x")
            cat.add_artifact("app", v, Artifact(target="local", id=f"sha256:{i}", path=str(folder / f"app-{v}.qcow2")))
            cat.set_status("app", v, "verified")
            versions.append((v, folder))
        decisions = prune.plan(cat, keep=1, in_use=set())
        text = render.prune_lines(decisions, dry_run=True)
        assert f"would delete app@{versions[0][0]}" in text
        assert f"keep app@{versions[2][0]}: among the newest 1 verified, on channel latest" in text
        upkeep.delete(cat, [d for d in decisions if d.delete], store)
        assert [cat.get("app", v).status for v, _ in versions] == ["deleted", "deleted", "verified"]
        assert not versions[0][1].exists() and versions[2][1].exists()
        assert cat.status_history("app", versions[0][0])[-1]["reason"] == "pruned"
        assert render.prune_lines(prune.plan(cat, keep=1, in_use=set()), dry_run=True).startswith("nothing to prune")


def test_deleting_one_of_two_identical_images_keeps_the_other_and_its_folder(tmp_path):
    store = tmp_path / "images"
    folder = store / f"sha256-{0:064d}"
    folder.mkdir(parents=True)
    with Catalog.open(tmp_path / "c.db") as cat:
        paths = []
        for n in (1, 2):  # two versions built to identical bytes share one content-addressed folder
            v = cat.begin_bake(name="app", parent=None, fingerprint="k", git_commit="c", git_dirty=False,
                               run_id="r", log_dir="/l", version=f"2026.0101.00000{n}")
            paths.append(folder / f"app-{v}.qcow2")
            paths[-1].write_bytes(b"same")
            cat.add_artifact("app", v, Artifact(target="local", id="sha256:0", path=str(paths[-1])))
            cat.set_status("app", v, "verified")
        doomed = [d for d in prune.plan(cat, keep=1, in_use=set()) if d.delete]
        upkeep.delete(cat, doomed, store)
        assert not paths[0].exists() and paths[1].read_bytes() == b"same"
        upkeep.delete(cat, [d for d in prune.plan(cat, keep=1, in_use=set()) if d.ref.endswith("000002")], store)
        assert not folder.exists()  # the last file gone, the folder goes too


def test_in_use_sees_every_process_holding_an_image_open(tmp_path):
    import subprocess

    image = tmp_path / "held.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    with open(image, "rb") as fh:  # closed here at once: only the holder keeps it open, as a storage daemon would
        holder = subprocess.Popen(["sleep", "60"], stdin=fh)
    try:
        assert upkeep.in_use()[str(image)].startswith("open in ")  # sleep, or a process forked while it opened
    finally:
        holder.kill()
        holder.wait()
    assert str(image) not in upkeep.in_use()


def test_in_use_sees_a_running_qemu_backing_chain(tmp_path):
    import subprocess
    import time

    base, overlay = tmp_path / "base.qcow2", tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
                   check=True)
    vm = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-m", "64", "-display", "none", "-S",
                           "-drive", f"file={overlay},if=virtio,format=qcow2"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        used: set[str] = set()
        while time.monotonic() < deadline and str(base) not in used:
            used = upkeep.in_use()
            time.sleep(0.2)
        assert str(base) in used and str(overlay) in used
    finally:
        vm.kill()
        vm.wait()
    assert str(base) not in upkeep.in_use()


def test_the_janitor_finds_a_killed_runs_scratch_by_its_run_id(tmp_path, monkeypatch):
    old, new = "20261101T020000Z-0a1d0d", "29991231T235959Z-fe0e0e"
    runs, tmp = tmp_path / "runs", Path("/tmp")
    private = Path(tempfile.mkdtemp(prefix="jt-", dir="/tmp"))  # a short $TMPDIR: runs keep sockets there too
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    made = [runs / f"{old}-base", runs / f"{new}-base", tmp / f"kiln-{old}-ab12cd",
            private / f"kiln-ssh-{old}-ef34gh", tmp / f"kiln-ssh-{new}-ij56kl", tmp / f"other-{old}"]
    for folder in made:
        folder.mkdir(parents=True)
    try:
        found = upkeep.leftovers(runs, timedelta(hours=3), tmp=upkeep.tmp_places())
        assert sorted(item.id for item in found) == sorted(str(p) for p in made[:1] + made[2:4])
        assert upkeep.clean(found) == [f"removed {item.describe()}" for item in found]
        assert [p.exists() for p in made] == [False, True, False, False, True, True]
    finally:
        for folder in made:
            if folder.exists():
                folder.rmdir()
        private.rmdir()


def test_the_janitor_finds_half_stored_images_and_abandoned_foundation_builds(tmp_path):
    store, cache = tmp_path / "images", tmp_path / "cache"
    folder = store / "sha256-ab12"
    folder.mkdir(parents=True)
    partial = folder / ".app-2026.1127.141438.1.qcow2.partial"
    stored, other = folder / "app-2026.1127.141438.qcow2", folder / ".notes.partial"
    work = cache / "foundation" / ".build-x1y2"
    work.mkdir(parents=True)
    for path in (partial, stored, other):
        path.write_bytes(b"x")
    later = datetime.now(UTC).timestamp() + 4 * 3600
    assert upkeep.abandoned_files(store, cache, timedelta(hours=3)) == []  # too fresh: perhaps being written
    found = upkeep.abandoned_files(store, cache, timedelta(hours=3), now=later)
    assert [item.id for item in found] == [str(partial), str(work)]
    with open(cache / "foundation" / ".lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a foundation build is running: its folder is not abandoned
        assert [item.id for item in upkeep.abandoned_files(store, cache, timedelta(0))] == [str(partial)]
        fcntl.flock(held, fcntl.LOCK_UN)
    assert upkeep.clean(found) == [f"removed {item.describe()}" for item in found]
    assert not partial.exists() and not work.exists() and stored.exists() and other.exists()


def test_a_resumed_chroot_image_keeps_its_builds_idempotence_evidence(tmp_path):
    from types import SimpleNamespace

    from pipeline import config, targets
    from pipeline.targets.local.chroot_builder import CONVERGED_TWICE
    from pipeline.targets.local.packer_qemu import PackerQemu

    place = targets.open_target("local", config.default_paths({"KILN_HOME": str(tmp_path / "home")}))
    spec = SimpleNamespace(name="app")
    with Catalog.open(tmp_path / "c.db") as cat:
        logs = {}
        for key in ("clean", "unchecked"):
            logs[key] = tmp_path / key
            v = cat.begin_bake(name="app", parent=None, fingerprint=key, git_commit="c", git_dirty=False,
                               run_id="old", log_dir=str(logs[key]))
            (logs[key] / "idempotence").mkdir(parents=True)
            (logs[key] / "idempotence" / "idempotence.log").write_text("ok=3 changed=0\n")
            image = tmp_path / f"{key}.qcow2"
            image.write_bytes(b"x")
            cat.add_artifact("app", v, Artifact(target="local", id="sha256:" + "0" * 64, path=str(image)))
        (logs["clean"] / "idempotence" / CONVERGED_TWICE).write_text("")  # a log alone proves nothing
        run = SimpleNamespace(catalog=cat, run_id="new", builders={"app": targets.builder(place, "chroot")})
        resumed = place.find_earlier(run, spec, "clean")
        assert resumed is not None and resumed.resume_at == "verify"
        assert resumed.built == {"idempotence": str(logs["clean"] / "idempotence" / "idempotence.log")}
        assert place.find_earlier(run, spec, "unchecked").built == {}  # killed mid-check, or the VM's own log
        run.builders = {"app": PackerQemu(place)}  # its builds converge once: the gate checks in the VM
        assert place.find_earlier(run, spec, "clean").built == {}
