"""The specs' run: testinfra's argv against an SSH guest, what specs are told, JUnit read back."""

import os
from pathlib import Path

from pipeline.verify import seed, testinfra
from pipeline.verify.guest import SshGuest


def guest(tmp_path: Path) -> SshGuest:
    access = seed.Access(user="kiln", key=tmp_path / "id_ed25519", seed_files=())
    return SshGuest(ssh_port=2222, access=access, ssh_config=tmp_path / "ssh_config", forwards={"http": 8081})


def test_spec_invocation(tmp_path):
    g = guest(tmp_path)
    inv = testinfra.spec_invocation(g, spec_dirs=[Path("/p/specs/base"), Path("/p/specs/app")],
                                 junit=tmp_path / "junit.xml", env={"KILN_IMAGE_NAME": "app"})
    argv = inv.argv
    assert argv[1:3] == ("-m", "pytest")
    assert "--hosts=kiln-ssh://kiln@127.0.0.1:2222" in argv
    assert ("-p", "pipeline.verify.spec_shell") in zip(argv, argv[1:], strict=False)
    assert f"--ssh-config={tmp_path / 'ssh_config'}" in argv
    assert "--sudo" in argv
    assert f"--junitxml={tmp_path / 'junit.xml'}" in argv
    assert argv[-2:] == ("/p/specs/base", "/p/specs/app")
    assert inv.env["KILN_IMAGE_NAME"] == "app"
    assert (Path(inv.env["PYTHONPATH"].split(os.pathsep)[0]) / "pipeline" / "verify" / "spec_shell.py").is_file()

def test_spec_env_tells_identity_and_ports(tmp_path):
    env = testinfra.spec_env(guest(tmp_path), {"image_name": "app", "image_version": "v"})
    assert env["KILN_IMAGE_NAME"] == "app"
    assert env["KILN_IMAGE_VERSION"] == "v"
    assert env["KILN_FORWARD_HTTP"] == "127.0.0.1:8081"
    assert env["KILN_SSH_PORT"] == "2222"

def test_read_junit(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text("""<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3">
      <testcase classname="base.test_base" name="test_a"/>
      <testcase classname="app.test_app" name="test_b"><failure message="x">boom</failure></testcase>
      <testcase classname="app.test_app" name="test_c"><error message="y"/></testcase>
    </testsuite></testsuites>""")
    assert testinfra.read_junit(junit) == (3, ["app.test_app::test_b", "app.test_app::test_c"])
    assert testinfra.read_junit(tmp_path / "none.xml") == (0, ["(no JUnit report was written)"])


def test_ansible_keeps_its_control_masters_in_the_guests_folder(tmp_path):
    access = seed.Access(user="kiln", key=tmp_path / "id_ed25519", seed_files=())
    g = SshGuest(ssh_port=22, access=access, ssh_config=tmp_path / "c", host="10.0.0.5", control_dir=tmp_path / "cp")
    assert g.ansible_host()["ansible_control_path_dir"] == str(tmp_path / "cp")
    assert "ansible_control_path_dir" not in guest(tmp_path).ansible_host()
