from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.targets.local import foundation


def test_repo_recipe(root):
    recipe = foundation.Recipe.load(root / "packer" / "foundation")
    assert recipe.suite == "bookworm"
    assert "cloud-init" in recipe.packages and "linux-image-cloud-amd64" in recipe.packages
    assert any("bookworm-security" in s for s in recipe.sources)


def test_digest_follows_every_recipe_file(project_copy: Path, tmp_path):
    folder = project_copy / "packer" / "foundation"
    d1 = foundation.Recipe.load(folder).digest()
    assert foundation.Recipe.load(folder).digest() == d1
    (folder / "cloud.cfg").write_text((folder / "cloud.cfg").read_text() + "# changed\n")
    d2 = foundation.Recipe.load(folder).digest()
    assert d2 != d1
    cache = tmp_path / "cache"
    assert foundation.cached_path(foundation.Recipe.load(folder), cache).parent.name == d2[7:23]


def test_mmdebstrap_invocation(root, tmp_path):
    recipe = foundation.Recipe.load(root / "packer" / "foundation")
    inv = foundation.mmdebstrap_invocation(recipe, tmp_path / "r.tar")
    argv = inv.argv
    assert inv.env["TMPDIR"] == str(tmp_path / "tmp")  # scratch inside the work folder Kiln removes
    assert argv[0] == "mmdebstrap"
    assert "--variant=minbase" in argv
    assert any(a.startswith("--include=") and "openssh-server" in a for a in argv)
    assert any(a.startswith("--customize-hook=sh ") and a.endswith(foundation.ROOT_UUID) for a in argv)
    assert argv[-4:] == (str(tmp_path / "r.tar"), *recipe.sources)


def test_disk_invocations_write_ext4_at_the_partition_offset(tmp_path):
    truncate, sfdisk, mkfs = foundation.disk_invocations(tmp_path / "root", tmp_path / "d.raw", 4096)
    assert truncate.argv == ("truncate", "-s", "4096M", str(tmp_path / "d.raw"))
    assert "offset=1048576" in mkfs.argv
    assert mkfs.argv[-1] == f"{4096 * 1024 - 1024}k"
    assert "^64bit,^metadata_csum" in mkfs.argv


def test_bad_recipe(tmp_path):
    with pytest.raises(ConfigError, match="recipe not found"):
        foundation.Recipe.load(tmp_path)
    (tmp_path / "recipe.toml").write_text('suite = "bookworm"\n')
    with pytest.raises(ConfigError, match="missing key 'sources'"):
        foundation.Recipe.load(tmp_path)


def test_ensure_returns_cached_without_building(root, tmp_path):
    recipe = foundation.Recipe.load(root / "packer" / "foundation")
    target = foundation.cached_path(recipe, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"qcow2")
    assert foundation.ensure(recipe, tmp_path, tmp_path / "log") == target
