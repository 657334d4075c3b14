"""Many writers at once lose nothing; a writer killed mid-write leaves the catalog whole."""

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pipeline.catalog import Artifact, Catalog

WRITERS = 8
ROUNDS = 6


def writer(path: str, n: int) -> None:
    os.environ["KILN_ACTOR"] = f"writer-{n}"
    with Catalog.open(Path(path)) as cat:
        for _ in range(ROUNDS):
            v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:k", git_commit="c", git_dirty=False,
                               run_id=f"w{n}", log_dir="/l")
            cat.add_artifact("app", v, Artifact(target="local", id=f"sha256:{n}-{v}", path="/p"))
            cat.set_status("app", v, "verified")
            cat.promote("app", v, "prod")
            if n % 2 == 0:
                cat.revoke("app", v, reason=f"writer {n}", cascade=False)


def test_parallel_processes_promote_bake_and_revoke_without_losing_updates(tmp_path):
    path = tmp_path / "catalog.db"
    Catalog.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=writer, args=(str(path), n)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with Catalog.open(path) as cat:
        records = cat.versions("app")
        assert len(records) == WRITERS * ROUNDS
        assert len({r.version for r in records}) == WRITERS * ROUNDS
        revoked = [r for r in records if r.status == "revoked"]
        assert len(revoked) == (WRITERS // 2) * ROUNDS
        history = cat.channel_history("app", "prod")
        assert len([e for e in history if e.action == "promote"]) == WRITERS * ROUNDS
        assert cat.channel("app", "prod") is not None
        assert cat.get("app", cat.channel("app", "prod")).status == "verified"


KILLABLE = """
import sys
from pipeline.catalog import Catalog, Artifact
with Catalog.open(sys.argv[1]) as cat:
    i = 0
    while True:
        v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:k", git_commit="c", git_dirty=False,
                           run_id="r", log_dir="/l")
        cat.add_artifact("app", v, Artifact(target="local", id="sha256:x", path="/p"))
        cat.set_status("app", v, "verified")
        i += 1
        if i == 5:
            print("ready", flush=True)
"""


def test_writer_killed_mid_write_leaves_a_whole_catalog(root, tmp_path):
    path = tmp_path / "catalog.db"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(path)], cwd=root, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Catalog.open(path) as cat:
        records = cat.versions("app")
        assert len(records) >= 15
        # every record is whole: a version that reached verified has its artifact
        for rec in records:
            if rec.status == "verified":
                assert rec.artifact("local") is not None
        assert cat.export()["channels"]["app"]["latest"]
