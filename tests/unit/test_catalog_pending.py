"""Publish pending marks against a real SQLite file: written with the move, cleared only by a publish that saw them."""

import pytest

from pipeline.catalog import Catalog
from pipeline.errors import KilnError
from tests.unit.test_catalog_channels import bake


@pytest.fixture
def cat(tmp_path, monkeypatch):
    monkeypatch.setenv("KILN_ACTOR", "tester")
    with Catalog.open(tmp_path / "catalog.db") as c:
        c.mirrored_by = "aws"
        yield c


def test_every_kind_of_channel_move_is_marked_with_the_move(cat):
    v1 = bake(cat, "app")  # set_status verified moved latest
    assert set(cat.pending()) == {"app"}
    v2 = bake(cat, "app")
    for move in (lambda: cat.promote("app", v1, "prod"), lambda: cat.promote("app", v2, "prod"),
                 lambda: cat.rollback("app", "prod"), lambda: cat.revoke("app", v2, reason="cve", cascade=False),
                 lambda: cat.restore("app", v2)):
        cat.mirrored(cat.pending())
        assert cat.pending() == {}
        move()
        assert set(cat.pending()) == {"app"}, move


def test_a_status_change_that_moves_no_channel_marks_nothing(cat):
    bake(cat, "app", status="failed")
    assert cat.pending() == {}


def test_a_refused_move_leaves_no_mark(cat):
    v = bake(cat, "app")
    cat.mirrored(cat.pending())

    def refuse(_rec):
        raise KilnError("the stored file changed")

    with pytest.raises(KilnError):
        cat.promote("app", v, "prod", check=refuse)
    assert cat.pending() == {} and cat.channel("app", "prod") is None


def test_a_publish_clears_only_the_marks_it_saw(cat):
    v = bake(cat, "app")
    seen = cat.pending()  # a publish reads the marks, then the catalog...
    cat.promote("app", v, "prod")  # ...another process moves prod meanwhile: a new mark
    cat.mirrored(seen)  # the first publish did not see prod's move: its mark stays
    assert set(cat.pending()) == {"app"} and cat.pending() != seen


def test_a_catalog_no_target_mirrors_keeps_no_marks(tmp_path):
    with Catalog.open(tmp_path / "catalog.db") as cat:
        v = bake(cat, "app")
        cat.promote("app", v, "prod")
        assert cat.pending() == {} and cat.dump()["tables"]["pending"] == []
