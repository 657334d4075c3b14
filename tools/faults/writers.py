"""Fifty writers at once on each catalog store: every update must be there afterwards."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.faults.cases import WRITERS, Outcome


def write_once(cat: Any, n: int) -> None:
    """One writer's work: a bake record, its artifact, verified, promoted to prod."""
    from pipeline.catalog import Artifact

    v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "a" * 64, git_commit="c", git_dirty=False,
                       run_id=f"w{n}", log_dir="/l")
    cat.add_artifact("app", v, Artifact(target="local", id=f"sha256:{n}", path=f"/s/{n}"))
    cat.set_status("app", v, "verified")
    cat.promote("app", v, "prod")


def count_writes(cat: Any) -> tuple[int, int, int]:
    """(records, distinct writers, promotions) of the writers' image."""
    records = cat.versions("app")
    promotes = [e for e in cat.channel_history("app", "prod") if e.action == "promote"]
    return len(records), len({r.run_id for r in records}), len(promotes)


def _sqlite_writer(path: str, n: int) -> None:
    from pipeline.catalog import Catalog

    with Catalog.open(Path(path)) as cat:
        write_once(cat, n)


def sqlite_writers(workdir: Path, writers: int = WRITERS) -> Outcome:
    """``writers`` processes write one catalog file at once; every update must be there."""
    import multiprocessing

    from pipeline.catalog import Catalog

    outcome = Outcome(case=f"{writers} SQLite writers", phase="catalog write")
    path = workdir / "writers.db"
    Catalog.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_sqlite_writer, args=(str(path), n)) for n in range(writers)]
    outcome.seconds, outcome.orphans = run_all(procs, 300)
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    with Catalog.open(path) as cat:
        counted = count_writes(cat)
    return _writers_verdict(outcome, writers, counted, [f"writer exit codes {failed}"] if failed else [])


def s3_writers(writers: int = WRITERS) -> Outcome:
    """``writers`` threads write the S3 catalog document at once, against a moto server on 127.0.0.1."""
    import boto3
    from moto.server import ThreadedMotoServer

    from pipeline.catalog import Catalog
    from pipeline.catalog.s3_store import S3Store

    outcome = Outcome(case=f"{writers} S3 writers (moto)", phase="catalog write")
    import logging

    from pipeline.vm import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    errors: list[str] = []
    try:
        def client() -> Any:
            return boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}")

        client().create_bucket(Bucket="kiln-catalog")

        def writer(n: int) -> None:
            try:
                write_once(Catalog(S3Store(client(), "kiln-catalog", "catalog.json", attempts=200)), n)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(repr(exc))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
        outcome.seconds, outcome.orphans = run_all(threads, 600)
        counted = count_writes(Catalog(S3Store(client(), "kiln-catalog", "catalog.json")))
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _writers_verdict(outcome, writers, counted, errors[:3])


def run_all(workers: Sequence[Any], timeout: float) -> tuple[float, int]:
    """Start every writer (thread or process) at once, wait for all; (seconds, how many never finished)."""
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout)
    return time.monotonic() - started, sum(1 for w in workers if w.is_alive())


def _writers_verdict(outcome: Outcome, writers: int, counted: tuple[int, int, int], problems: list[str]) -> Outcome:
    lost = sum(writers - c for c in counted)
    outcome.half_published = lost
    outcome.problems += problems
    outcome.details.append(f"counted {counted[0]} records, {counted[1]} writers, {counted[2]} promotions "
                           f"of {writers} each")
    return outcome
