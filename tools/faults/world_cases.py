"""The world group's cases: each injects one fault through the proxy, runs Kiln, and judges the outcome.

A case gets a freshly seeded ``World`` (``seed``: v1 on ``prod``, v2
``latest``) and fills its ``Row``; ``judge`` sets the three columns from what
the emulator holds afterwards, read directly, never through the faults.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from tools.faults.proxy import Rule
from tools.faults.world import BUCKET, KEY, REGIONS, Row, World, last_line

Case = Callable[[World, Row], None]


def ran(world: World, row: Row, *args: str, want: int, **extra: str) -> str:
    """Run one command; a different exit than ``want`` is a problem. Its output."""
    done = world.invoke(*args, **extra)
    row.exit_code, row.message = done.returncode, last_line(done)
    if done.returncode != want:
        row.problems.append(f"{' '.join(args[:2])}: exit {done.returncode}, expected {want}: {row.message}")
    if "Traceback" in done.stderr or "internal error" in done.stderr:
        row.problems.append(f"{' '.join(args[:2])}: not one line: {done.stderr.strip()[-200:]}")
    return done.stdout + done.stderr


def judge(world: World, row: Row, *, prod: int | None = 0, latest: int | None = 1,
          gone: Collection[str] = ()) -> None:
    """Catalog: readable, ``prod``/``latest`` on those seeded versions (None: nowhere). SSM: every region where
    the catalog says. Account: every AMI the catalog keeps or SSM names is there, and ``gone`` ones are not."""
    want = {"prod": prod, "latest": latest}
    with world.catalog() as cat:
        at = {ch: cat.channel("app", ch) for ch in want}
        kept = [a for r in cat.versions("app") if r.status == "verified" for a in r.artifacts]
    expected = {ch: None if n is None else world.versions[n] for ch, n in want.items()}
    row.catalog_ok = at == expected
    if not row.catalog_ok:
        row.problems.append(f"catalog channels {at}, expected {expected}")
    ssm = {ch: world.ssm(ch) for ch in want}
    row.ssm_ok = all(ssm[ch] == {r: world.amis[v][r] if v else None for r in REGIONS} for ch, v in at.items())
    if not row.ssm_ok:
        row.problems.append(f"SSM {ssm}, catalog {at}")
    images = world.images()
    named = {(a.region, a.id) for a in kept} | {(r, ami) for values in ssm.values() for r, ami in values.items() if ami}
    missing = sorted(f"{r} {ami}" for r, ami in named if ami not in images[r])
    left = sorted(ami for ami in gone if any(ami in found for found in images.values()))
    row.account_ok = not missing and not left
    if not row.account_ok:
        row.problems.append(f"AMIs named but gone: {missing}; AMIs left that should be gone: {left}")


def fault(world: World, service: str, operation: str, kind: str, **more: Any) -> None:
    """Add one rule to the proxy."""
    world.faults.add(Rule(service, operation, kind, **more))


def lost_reply_on_a_channel_move(world: World, row: Row) -> None:
    fault(world, "s3", "PutObject", "drop", path=KEY)
    ran(world, row, "promote", f"app@{world.versions[1]}", "--channel", "prod", want=0)
    with world.catalog() as cat:
        moves = [e for e in cat.export()["channel_history"]["app"]["prod"] if e["action"] == "promote"]
    if len(moves) != 2:
        row.problems.append(f"{len(moves)} promotes recorded, expected 2 (the seed's and this one, once)")
    judge(world, row, prod=1)


def lost_reply_on_a_status_change(world: World, row: Row) -> None:
    fault(world, "s3", "PutObject", "drop", path=KEY)
    ran(world, row, "revoke", f"app@{world.versions[1]}", "--reason", "CVE", want=0)
    judge(world, row, latest=0)


def lost_reply_on_a_lease_claim(world: World, row: Row) -> None:
    from pipeline.catalog import Lease
    from pipeline.catalog.s3_leases import S3Leases

    fault(world, "s3", "PutObject", "drop", path="lease")
    want = Lease(image="app", key="sha256:" + "7" * 64, target="aws", actor="ci", host="agent", run_id="run-a")
    leases = S3Leases(world.client("s3", through_proxy=True), BUCKET, KEY)
    got, _ = leases.claim(want, 600)
    other, _ = S3Leases(world.client("s3"), BUCKET, KEY).claim(
        Lease(image="app", key=want.key, target="aws", actor="laptop", host="other", run_id="run-b"), 600)
    if not (got.ours(want) and other.ours(want)):
        row.problems.append(f"the lease is held by {got.holder} / {other.holder}, expected run-a once")
    fault(world, "s3", "PutObject", "drop", path="lease")  # the renewal's reply lost too
    renewed = leases.renew(got, 900)
    fault(world, "s3", "DeleteObject", "drop", path="lease")  # and the release's
    leases.release(renewed)
    if S3Leases(world.client("s3"), BUCKET, KEY).live():
        row.problems.append("the lease is still held after its release")
    row.message = f"claimed, renewed and released once by {got.holder}"
    judge(world, row)


def lost_reply_on_a_bakes_writes(world: World, row: Row) -> None:
    """begin_bake, add_artifact and set_status, each reply dropped once: one record, one artifact, one verdict."""
    from pipeline.catalog import Artifact, Catalog
    from pipeline.catalog.s3_store import S3Store

    cat = Catalog(S3Store(world.client("s3", through_proxy=True), BUCKET, KEY, create=False))
    fault(world, "s3", "PutObject", "drop", path=KEY, times=3)
    version = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "5" * 64, git_commit="c",
                             git_dirty=False, run_id="20261201T020000Z-0d4a4a", log_dir="/l")
    cat.add_artifact("base", version, Artifact(target="aws", id="ami-0base", region=REGIONS[0]))
    cat.set_status("base", version, "failed", reason="1 of 3 spec(s) failed")
    with world.catalog() as seen:
        records = seen.versions("base")
        history = seen.export()["images"]
    ours = [h for h in history if h["name"] == "base"]
    if len(records) != 1 or len(records[0].artifacts) != 1 or records[0].status != "failed" \
            or [h["to"] for h in ours[0]["status_history"]] != ["building", "failed"]:
        row.problems.append(f"recorded {[(r.ref, r.status, len(r.artifacts)) for r in records]}, "
                            f"history {[h['to'] for h in ours[0]['status_history']] if ours else None}")
    row.message = f"{len(records)} record, {len(records[0].artifacts) if records else 0} artifact, once each"
    judge(world, row)


def throttled(action: Callable[[World, Row], tuple[list[str], dict[str, int | None]]]) -> Case:
    """SSM throttling every PutParameter and DeleteParameter in the second region during ``action``: the command
    fails in one line with the catalog's move marked pending; reconcile, once SSM answers, finishes it."""
    def case(world: World, row: Row) -> None:
        args, expect = action(world, row)
        for op in ("PutParameter", "DeleteParameter"):
            fault(world, "ssm", op, "throttle", region=REGIONS[1], times=1000)
        ran(world, row, *args, want=1)
        failed = row.message
        with world.catalog() as cat:
            if "app" not in cat.export().get("channels", {}):
                row.problems.append("the catalog lost app's channels")
        world.faults.clear()
        ran(world, row, "catalog.reconcile", want=0)
        row.message, row.exit_code = failed, 1
        judge(world, row, **expect)
    return case


def promote_v2(world: World, row: Row) -> tuple[list[str], dict[str, int | None]]:
    return ["promote", f"app@{world.versions[1]}", "--channel", "prod"], {"prod": 1}


def rollback_prod(world: World, row: Row) -> tuple[list[str], dict[str, int | None]]:
    ran(world, row, "promote", f"app@{world.versions[1]}", "--channel", "prod", want=0)
    return ["rollback", "app", "--channel", "prod"], {"prod": 0}


def revoke_v2(world: World, row: Row) -> tuple[list[str], dict[str, int | None]]:
    return ["revoke", f"app@{world.versions[1]}", "--reason", "CVE"], {"latest": 0}


def restore_v2(world: World, row: Row) -> tuple[list[str], dict[str, int | None]]:
    ran(world, row, "revoke", f"app@{world.versions[1]}", "--reason", "CVE", want=0)
    return ["restore", f"app@{world.versions[1]}"], {"latest": 1}


def s3_failing_reads(world: World, row: Row) -> None:
    fault(world, "s3", "GetObject", "503", path=KEY, times=1000)
    said = ran(world, row, "catalog.resolve", "app", "--channel", "prod", want=1)
    if f"s3://{BUCKET}/{KEY}" not in said:
        row.problems.append("the error does not name the object")
    world.faults.clear()
    judge(world, row)


def damaged(world: World, row: Row, body: bytes | None) -> None:
    """The document deleted (``None``) or replaced by ``body``: every command refuses it and nothing writes it;
    then the way back — ``catalog.import`` of the last export (a newer format: the newer Kiln's own document)."""
    import json

    s3 = world.client("s3")
    original = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    with world.catalog() as cat:
        (world.home / "before.json").write_text(json.dumps(cat.export()))
    if body is None:
        s3.delete_object(Bucket=BUCKET, Key=KEY)
    else:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
    bake = [] if body is None else [("bake", "app")]  # a deleted one is a first bake's to create (and adopt)
    for args in (*bake, ("janitor", "--older-than", "0"), ("prune", "--keep", "1"), ("catalog.resolve", "app"),
                 ("promote", f"app@{world.versions[1]}", "--channel", "prod")):
        ran(world, row, *args, want=1, KILN_AWS_API_ONLY="1")  # (a bake that got past the catalog builds nothing)
    message = row.message
    try:
        now = s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    except s3.exceptions.NoSuchKey:
        now = None
    if now != body:
        row.problems.append("the document was written while it was refused")
    if body is not None and b'"format": 99' in body:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=original)  # the upgrade: the newer Kiln reads its own
    else:
        if body is not None:
            s3.delete_object(Bucket=BUCKET, Key=KEY)  # moved aside, as the hint says
        ran(world, row, "catalog.import", str(world.home / "before.json"), want=0)
    row.exit_code, row.message = 1, message
    judge(world, row)


def laptop_janitor(world: World, row: Row) -> None:
    ran(world, row, "janitor", "--older-than", "0", want=1, KILN_AWS_CATALOG_BUCKET="")
    judge(world, row)


def prune_refused_in_one_region(world: World, row: Row) -> None:
    from pipeline.catalog import Artifact
    from tools.faults.seed import register

    with world.catalog() as cat:  # a third version: v2 is now on no channel and goes
        v3 = cat.begin_bake(name="app", parent=None, fingerprint="sha256:" + "3" * 64, git_commit="c",
                            git_dirty=False, run_id="20261115T020000Z-0c3f0f", log_dir="/l",
                            version="2026.1115.020000")
        world.amis[v3] = register(world, v3, "20261115T020000Z-0c3f0f", cat.identity())
        for region, ami in world.amis[v3].items():
            cat.add_artifact("app", v3, Artifact(target="aws", id=ami, region=region))
        cat.set_status("app", v3, "verified")
    world.versions.append(v3)
    ran(world, row, "catalog.reconcile", want=0)
    fault(world, "ec2", "DeregisterImage", "500", region=REGIONS[1], times=1000)
    failed = ran(world, row, "prune", "--keep", "1", want=1)
    message = row.message
    if "FAILED to deregister eu-west-1" not in failed:
        row.problems.append("the error does not name the region left")
    world.faults.clear()
    ran(world, row, "janitor", "--older-than", "0", want=0)
    row.exit_code, row.message = 1, message
    judge(world, row, latest=2, gone=world.amis[world.versions[1]].values())


def slow_ssm(world: World, row: Row) -> None:
    fault(world, "ssm", "PutParameter", "latency", seconds=2.0, times=1000)
    ran(world, row, "promote", f"app@{world.versions[1]}", "--channel", "prod", want=0)
    judge(world, row, prod=1)


CASES: list[tuple[str, str, Case]] = [
    ("lost reply: channel move", "S3 PutObject applied, reply dropped", lost_reply_on_a_channel_move),
    ("lost reply: status change", "S3 PutObject applied, reply dropped", lost_reply_on_a_status_change),
    ("lost reply: bake writes", "S3 PutObject applied, reply dropped, x3", lost_reply_on_a_bakes_writes),
    ("lost reply: lease", "claim, renew, release: reply dropped", lost_reply_on_a_lease_claim),
    ("throttled SSM: promote", "ThrottlingException in eu-west-1", throttled(promote_v2)),
    ("throttled SSM: rollback", "ThrottlingException in eu-west-1", throttled(rollback_prod)),
    ("throttled SSM: revoke", "ThrottlingException in eu-west-1", throttled(revoke_v2)),
    ("throttled SSM: restore", "ThrottlingException in eu-west-1", throttled(restore_v2)),
    ("S3 failing reads", "503 on every GetObject", s3_failing_reads),
    ("catalog deleted", "object deleted by hand", lambda w, r: damaged(w, r, None)),
    ("catalog emptied", "object replaced by {}", lambda w, r: damaged(w, r, b"{}")),
    ("catalog of a newer Kiln", "format 99", lambda w, r: damaged(w, r, b'{"state": {"format": 99, "tables": {}}}')),
    ("janitor from a laptop", "no catalog_bucket", laptop_janitor),
    ("prune, one region refusing", "500 on DeregisterImage in eu-west-1", prune_refused_in_one_region),
    ("slow SSM", "2 s on every PutParameter", slow_ssm),
]
