"""Stored files against their artifact ids: a changed byte is caught, an unchanged file is not hashed again."""

import hashlib
import os

import pytest

from pipeline.catalog import Artifact, Catalog
from pipeline.errors import IntegrityError
from pipeline.targets.local import integrity
from pipeline.targets.local.integrity import Integrity


@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "base.qcow2"
    path.write_bytes(b"A" * 4096)
    return path, "sha256:" + hashlib.sha256(b"A" * 4096).hexdigest()


def hashes(monkeypatch) -> list:
    calls = []
    real = integrity.digest_file
    monkeypatch.setattr(integrity, "digest_file", lambda p: calls.append(p) or real(p))
    return calls


def test_an_unchanged_file_is_hashed_once(stored, tmp_path, monkeypatch):
    path, artifact_id = stored
    calls = hashes(monkeypatch)
    checker = Integrity(tmp_path / "integrity.json")
    checker.check(path, artifact_id)
    checker.check(path, artifact_id)
    Integrity(tmp_path / "integrity.json").check(path, artifact_id)  # remembered across runs
    assert calls == [path]
    checker.check(path, artifact_id, full=True)
    assert calls == [path, path]


def test_a_flipped_byte_is_named_with_both_digests(stored, tmp_path):
    path, artifact_id = stored
    checker = Integrity(tmp_path / "integrity.json")
    checker.check(path, artifact_id)
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(2048)
        fh.write(b"B")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its mtime put back
    found = hashlib.sha256(b"A" * 2048 + b"B" + b"A" * 2047).hexdigest()
    with pytest.raises(IntegrityError) as err:
        checker.check(path, artifact_id)
    assert err.value.message == (f"{path}: its content does not match its artifact id: expected {artifact_id}, "
                                 f"found sha256:{found}")
    assert "invoke catalog.check" in (err.value.hint or "")


def test_the_store_step_seeds_the_cache(stored, tmp_path, monkeypatch):
    path, artifact_id = stored
    checker = Integrity(tmp_path / "integrity.json")
    checker.remember(path, artifact_id.partition(":")[2])
    calls = hashes(monkeypatch)
    checker.check(path, artifact_id)
    assert calls == []


def test_ids_that_are_not_digests_are_not_compared(stored, tmp_path):
    path, _ = stored
    Integrity(tmp_path / "integrity.json").check(path, "ami-0123456789abcdef0")


def test_a_refused_channel_move_writes_nothing(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        v = cat.begin_bake(name="base", parent=None, fingerprint="sha256:" + "0" * 64, git_commit="c",
                           git_dirty=False, run_id="r", log_dir="/l")
        cat.add_artifact("base", v, Artifact(target="local", id="sha256:abc", path="/s/base.qcow2"))
        cat.set_status("base", v, "verified")
        seen = []

        def refuse(record):
            seen.append(record.ref)
            raise IntegrityError("damaged")

        with pytest.raises(IntegrityError):
            cat.promote("base", v, "prod", check=refuse)
        assert seen == [f"base@{v}"] and cat.channel("base", "prod") is None
        assert cat.channel_history("base", "prod") == []
        cat.promote("base", v, "prod", check=lambda record: None)
        assert cat.channel("base", "prod") == v
