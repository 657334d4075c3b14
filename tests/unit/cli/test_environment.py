"""The KILN_* variables: each bad value is one ConfigError naming the variable; good and unset ones pass."""

import os

import pytest

from pipeline.cli import environment
from pipeline.errors import ConfigError


def bad(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as err:
        environment.check(env)
    return f"{err.value.message} | {err.value.hint}"


def test_unset_and_good_values_pass(tmp_path):
    environment.check({})
    environment.check({"KILN_HOME": str(tmp_path / "new" / "home"), "KILN_CACHE": str(tmp_path),
                       "KILN_PROJECT": str(tmp_path), "KILN_ACCEL": "kvm", "KILN_PAUSE_AT": "record:app",
                       "KILN_PAUSE_SECONDS": "2.5", "KILN_AWS_API_ONLY": "1", "KILN_AWS_SSH_CIDR": "10.0.0.0/16",
                       "KILN_ACTOR": "anything at all", "KILN_LEASE_SECONDS": "0.5",
                       "KILN_CATALOG": str(tmp_path / "shared" / "catalog.db")})


@pytest.mark.parametrize("name", ["KILN_HOME", "KILN_CACHE", "KILN_PROJECT"])
def test_a_folder_that_is_a_file(tmp_path, name):
    (tmp_path / "f").write_text("")
    said = bad({name: str(tmp_path / "f")})
    assert said.startswith(f"{name}={tmp_path / 'f'}: is a file, not a folder | point {name}")


def test_state_folders_below_a_file_or_read_only(tmp_path):
    (tmp_path / "f").write_text("")
    assert f"{tmp_path / 'f'} is a file, so the folder cannot be made" in bad({"KILN_HOME": str(tmp_path / "f/x/y")})


def test_a_catalog_file_that_is_a_folder_or_below_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    assert bad({"KILN_CATALOG": str(tmp_path)}).startswith(
        f"KILN_CATALOG={tmp_path}: is a folder, not a catalog file | point KILN_CATALOG at a catalog file in a folder")
    assert f"KILN_CATALOG={tmp_path / 'f' / 'catalog.db'}: {tmp_path / 'f'} is a file, not a folder" in bad(
        {"KILN_CATALOG": str(tmp_path / "f" / "catalog.db")})
    assert f"{tmp_path / 'f'} is a file, so the folder cannot be made" in bad(
        {"KILN_CATALOG": str(tmp_path / "f" / "x" / "catalog.db")})


def test_a_catalog_file_this_user_cannot_write(tmp_path, monkeypatch):
    (tmp_path / "catalog.db").write_text("")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and p != tmp_path / "catalog.db")
    assert f"KILN_CATALOG={tmp_path / 'catalog.db'}: this user cannot read and write it" in bad(
        {"KILN_CATALOG": str(tmp_path / "catalog.db")})


def test_state_folders_on_a_read_only_place(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and p != tmp_path / "ro")
    assert f"KILN_CACHE={tmp_path / 'ro' / 'c'}: {tmp_path / 'ro'} is not writable" in bad(
        {"KILN_CACHE": str(tmp_path / "ro" / "c")})
    monkeypatch.setattr(os, "access", real)

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly())
    assert "is not writable" in bad({"KILN_HOME": str(tmp_path / "home")})


def test_a_project_must_exist(tmp_path):
    assert bad({"KILN_PROJECT": str(tmp_path / "nope")}).startswith(f"KILN_PROJECT={tmp_path / 'nope'}: no such folder")


@pytest.mark.parametrize(("name", "value", "words"), [
    ("KILN_ACCEL", "bogus", "KILN_ACCEL=bogus: invalid value | allowed: tcg, kvm"),
    ("KILN_PAUSE_AT", "record", "KILN_PAUSE_AT=record: not STEP:IMAGE | e.g. record:app"),
    ("KILN_PAUSE_SECONDS", "soon", "KILN_PAUSE_SECONDS=soon: not a number of seconds"),
    ("KILN_PAUSE_SECONDS", "-1", "not a number of seconds"),
    ("KILN_PAUSE_SECONDS", "inf", "not a number of seconds"),
    ("KILN_LEASE_SECONDS", "a while", "KILN_LEASE_SECONDS=a while: not a number of seconds"),
    ("KILN_LEASE_SECONDS", "0", "KILN_LEASE_SECONDS=0: must be more than 0 seconds | e.g. 180"),
    ("KILN_AWS_API_ONLY", "yes", "KILN_AWS_API_ONLY=yes: invalid value | allowed: 0, 1"),
    ("KILN_AWS_SSH_CIDR", "10.0.0.300/8", "KILN_AWS_SSH_CIDR=10.0.0.300/8: not an address block"),
    ("KILN_AWS_SSH_CIDR", "10.0.0.1", "not an address block"),
])
def test_bad_values_name_the_variable_and_what_is_allowed(name, value, words):
    assert words in bad({name: value})
