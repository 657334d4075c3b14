from pipeline.catalog import Catalog
from pipeline.cli import render
from pipeline.reports import diff


def test_diff_packages_and_inputs(tmp_path):
    with Catalog.open(tmp_path / "c.db") as cat:
        refs = []
        for pkgs, files, packer in (
            ({"nginx": "1.22.1-9", "openssl": "3.0.15-1", "gone": "1"}, {"a.yml": "1", "b.yml": "1"}, "1.6.6"),
            ({"nginx": "1.22.1-9", "openssl": "3.0.17-1", "new": "2"}, {"a.yml": "2", "b.yml": "1", "c.yml": "1"},
             "1.11.2"),
        ):
            v = cat.begin_bake(name="app", parent=None, fingerprint="sha256:k", git_commit="c", git_dirty=False,
                               run_id="r", log_dir="/l", inputs={"files": files, "values": {"packer": packer}})
            cat.set_status("app", v, "verified")
            cat.record_packages("app", v, [{"name": n, "version": ver, "architecture": "amd64"}
                                           for n, ver in pkgs.items()])
            refs.append(("app", v))
        d = diff.compare(cat, refs[0], refs[1])
    assert d.added == [("new:amd64", "2")]
    assert d.removed == [("gone:amd64", "1")]
    assert d.changed == [("openssl:amd64", "3.0.15-1", "3.0.17-1")]
    assert d.files == ["a.yml", "c.yml"]
    assert d.values == [("packer", "1.6.6", "1.11.2")]
    text = render.diff_lines(d)
    assert "packages: 1 added, 1 removed, 1 changed" in text
    assert "  ~ openssl:amd64 3.0.15-1 → 3.0.17-1" in text
    assert "input files changed: 2" in text
