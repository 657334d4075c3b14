"""A re-verification judges the image, not the world: only a failed gate changes a verified version."""

from __future__ import annotations

import pytest

from pipeline.app import baking
from pipeline.catalog import Catalog
from pipeline.errors import KilnError, VerificationFailed
from tests.unit.test_fake_target import PUBLISHED, FakeTarget, project  # noqa: F401 — the fixture

__all__ = ["project"]


def specs_changed(project, passing: bool) -> None:  # noqa: F811
    body = "assert True is not False" if passing else "assert False, 'the port is closed'"
    (project / "specs" / "branch" / "test_more.py").write_text(f"def test_more():\n    {body}\n")


def branch(tmp_path):
    with Catalog.open(tmp_path / "home" / "catalog.db", create=False) as cat:
        [rec] = cat.versions("branch")
        return rec, cat.channel("branch"), [h["to"] for h in cat.status_history("branch", rec.version)]


@pytest.mark.parametrize("error", [KilnError("no subnet matches [aws] subnet_filter"), OSError("ssh timed out")])
def test_an_error_of_the_world_during_a_reverification_is_not_a_verdict(project, tmp_path, monkeypatch,  # noqa: F811
                                                                         error):
    baking.bake("branch", target="fake")
    specs_changed(project, passing=True)
    monkeypatch.setattr(FakeTarget, "boot_error", error)
    with pytest.raises(type(error)) as raised:
        baking.bake("branch", target="fake")
    if isinstance(error, KilnError):
        assert "stays as it was (not a verdict on the image)" in raised.value.message
    rec, latest, history = branch(tmp_path)
    assert rec.status == "verified" and latest == rec.version and history == ["building", "verified"]


def test_a_failed_reverification_marks_it_failed_and_publishes_the_channels_it_left(project, tmp_path,  # noqa: F811
                                                                                     monkeypatch):
    baking.bake("branch", target="fake")
    specs_changed(project, passing=False)
    PUBLISHED.clear()
    with pytest.raises(VerificationFailed) as failed:
        baking.bake("branch", target="fake")
    assert "spec(s) failed" in failed.value.message and "is now recorded failed" in failed.value.message
    rec, latest, history = branch(tmp_path)
    assert rec.status == "failed" and latest is None and history == ["building", "verified", "failed"]
    assert PUBLISHED == ["fake: branch/latest → None"]  # deployers no longer get the failed version
