from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import ConfigError


def test_repo_config_declares_base_and_app(root):
    project = config.load(root)
    assert set(project.images) >= {"base", "app"}
    assert project.get("app").parent == "base"
    assert project.get("base").parent is None
    assert [s.name for s in project.lineage("app")] == ["base", "app"]
    assert project.children("base") == ["app"]
    assert project.get("app").forward == {"http": 80}


def test_third_image_is_config_playbook_and_specs_only(project_copy: Path):
    (project_copy / "playbooks" / "worker.yml").write_text("- hosts: all\n  roles: []\n")
    (project_copy / "specs" / "worker").mkdir()
    with open(project_copy / "kiln.toml", "a") as fh:
        fh.write('\n[images.worker]\nparent = "base"\n')
    project = config.load(project_copy)
    assert [s.name for s in project.lineage("worker")] == ["base", "worker"]
    assert project.children("base") == ["app", "worker"]


def write(tmp_path: Path, toml: str, images: tuple[str, ...] = ("a", "b")) -> Path:
    for name in images:
        (tmp_path / "playbooks").mkdir(exist_ok=True)
        (tmp_path / "playbooks" / f"{name}.yml").write_text("- hosts: all\n")
        (tmp_path / "specs" / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "kiln.toml").write_text(toml)
    return tmp_path


@pytest.mark.parametrize(("toml", "message"), [
    ('[images.a]\nparent = "zzz"\n', "unknown parent 'zzz'"),
    ('[images.a]\nparent = "b"\n[images.b]\nparent = "a"\n', "parent cycle"),
    ('[images.a]\nparent = "a"\n', "parent cycle a -> a"),
    ("[images.A]\n", "invalid image name 'A'"),
    ("[images.foundation]\n", "invalid image name 'foundation'"),
    ("[images.a]\nbogus = 1\n", "unknown key(s) bogus"),
    ('[images.a]\nforward = { http = "80" }\n', "forward must map"),
    ("[images.a\n", "invalid TOML"),
    ("title = 'x'\n", "no [images.<name>] tables"),
    ('[images.c]\n', "playbook playbooks/c.yml for image 'c' not found"),
])
def test_bad_config_names_file_and_fix(tmp_path, toml, message):
    write(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert message in err.value.message
    assert str(tmp_path / "kiln.toml") in err.value.message


def test_error_carries_line_number(tmp_path):
    write(tmp_path, '[images.a]\n\n\n[images.b]\nparent = "nope"\n')
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert f"{tmp_path / 'kiln.toml'}:4:" in err.value.message


def test_missing_spec_folder(tmp_path):
    write(tmp_path, "[images.a]\n")
    (tmp_path / "specs" / "a").rmdir()
    with pytest.raises(ConfigError, match="spec folder specs/a"):
        config.load(tmp_path)


def test_unknown_image_lists_known(root):
    with pytest.raises(ConfigError) as err:
        config.load(root).get("nope")
    assert "unknown image 'nope'" in err.value.message
    assert "app" in (err.value.hint or "")


def test_paths_precedence(tmp_path):
    env = {"KILN_HOME": str(tmp_path / "h"), "KILN_CACHE": str(tmp_path / "c"), "KILN_PROJECT": str(tmp_path)}
    paths = config.default_paths(env)
    assert paths.home == tmp_path / "h"
    assert paths.catalog == tmp_path / "h" / "catalog.db"
    assert paths.cache == tmp_path / "c"
    xdg = config.default_paths({"XDG_DATA_HOME": str(tmp_path / "d"), "XDG_CACHE_HOME": str(tmp_path / "x")})
    assert xdg.home == tmp_path / "d" / "kiln"
    assert xdg.cache == tmp_path / "x" / "kiln"
    shared = config.default_paths({**env, "KILN_CATALOG": str(tmp_path / "shared" / "catalog.db")})
    assert shared.catalog == tmp_path / "shared" / "catalog.db" and shared.home == tmp_path / "h"
    assert shared.logs == tmp_path / "h" / "logs"  # only the catalog moves


@pytest.mark.parametrize(("toml", "where", "message"), [
    ('[images.a]\n\n[images.b]\nparent = "a"\n[images.a]\n', ":5: invalid TOML: Cannot declare ('images', 'a') twice",
     "(at line"),
    ('[images.a]\ntitle = "never closed\n', ":2: invalid TOML: Illegal character", "(at line"),
    ('[images.a]\n\n[images.b]\nparent = "c"\n[images.c]\nparent = "b"\n', ":3: parent cycle b -> c -> b", "\n"),
])
def test_toml_errors_and_cycles_point_at_their_real_line(tmp_path, toml, where, message):
    write(tmp_path, toml, images=("a", "b", "c"))
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path)
    assert err.value.message.startswith(f"{tmp_path / 'kiln.toml'}{where}"), err.value.message
    assert message not in err.value.message
