import json
import sys
from pathlib import Path

import pytest

from pipeline import identity, packer
from pipeline.errors import BuildFailed, ToolMissing

MANIFEST = {
    "builds": [
        {"name": "image", "builder_type": "qemu", "build_time": 1, "artifact_id": "VM",
         "files": [{"name": "/old/base.qcow2", "size": 1}], "packer_run_uuid": "old", "custom_data": {}},
        {"name": "image", "builder_type": "qemu", "build_time": 2, "artifact_id": "VM",
         "files": [{"name": "/out/base-2026.1127.141438.qcow2", "size": 733151232}],
         "packer_run_uuid": "3ace9b47", "custom_data": {"image_name": "base", "run_id": "r1"}},
    ],
    "last_run_uuid": "3ace9b47",
}


def test_build_invocation_argv(tmp_path):
    inv = packer.build_invocation(template_dir=Path("/p/packer/image"), var_file=Path("/s/v.json"), only="qemu.image",
                                  workdir=tmp_path / "logs", cache=Path("/c"), env={"TMPDIR": "/t"})
    assert inv.argv == ("packer", "build", "-color=false", "-timestamp-ui", "-only=qemu.image",
                        "-var-file=/s/v.json", "/p/packer/image")
    assert inv.env["CHECKPOINT_DISABLE"] == "1"
    assert inv.env["PACKER_CACHE_DIR"] == "/c"
    assert inv.env["TMPDIR"] == "/t"
    assert inv.env["PATH"].split(":")[0] == str(packer.SHIMS)
    assert inv.cwd == tmp_path / "logs" and inv.cwd.is_dir()  # a crash.log lands beside the run's logs


def test_every_packer_command_runs_in_its_log_folder_with_its_cache(tmp_path):
    plugins = Path("/p/packer/plugins.pkr.hcl")
    for inv in (packer.init_invocation(plugins, workdir=tmp_path / "a", cache=tmp_path / "c"),
                packer.validate_invocation(template_dir=Path("t"), var_file=Path("v.json"), only="amazon-ebs.image",
                                           workdir=tmp_path / "a", cache=tmp_path / "c")):
        assert inv.cwd == tmp_path / "a"
        assert inv.env["PACKER_CACHE_DIR"] == str(tmp_path / "c")
    assert "-only=amazon-ebs.image" in inv.argv


def test_read_manifest_last_build(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    out = packer.read_manifest(path)
    assert out.files == (Path("/out/base-2026.1127.141438.qcow2"),)
    assert out.custom_data["image_name"] == "base"
    assert out.run_uuid == "3ace9b47"
    assert packer.read_manifest(path, run_uuid="old").files == (Path("/old/base.qcow2"),)


@pytest.mark.parametrize(("content", "message"), [
    (None, "wrote no manifest"), ("{not json", "unreadable Packer manifest"), ('{"builds": []}', "records no build"),
])
def test_read_manifest_errors(tmp_path, content, message):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BuildFailed, match=message):
        packer.read_manifest(path)


def test_version_parsing():
    assert packer.parse_version("Packer v1.6.6\n") == (1, 6, 6)
    assert packer.parse_version("Packer v1.11.2\n\nYour version is out of date") == (1, 11, 2)
    with pytest.raises(ToolMissing):
        packer.parse_version("garbage")
    assert not packer.needs_init((1, 6, 6))
    assert packer.needs_init((1, 7, 0))


def test_var_file_is_json(tmp_path):
    path = packer.write_var_file(tmp_path / "v.json", {"b": 1, "a": ["x"]})
    assert json.loads(path.read_text()) == {"a": ["x"], "b": 1}
    with pytest.raises(ValueError):
        packer.write_var_file(tmp_path / "v.hcl", {})


def test_qemu_img_shim_adds_backing_format(tmp_path):
    import os
    import subprocess

    fake = tmp_path / "qemu-img"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "KILN_REAL_QEMU_IMG": str(fake)}
    shim = str(packer.SHIMS / "qemu-img")
    run = lambda *a: subprocess.run([shim, *a], env=env, capture_output=True, text=True).stdout.strip()  # noqa: E731
    assert run("create", "-f", "qcow2", "-b", "/p.qcow2", "/c.qcow2") == "create -F qcow2 -f qcow2 -b /p.qcow2 /c.qcow2"
    assert run("create", "-f", "qcow2", "-F", "raw", "-b", "/p", "/c") == "create -f qcow2 -F raw -b /p /c"
    assert run("convert", "-O", "qcow2", "a", "b") == "convert -O qcow2 a b"


def test_real_packer_accepts_the_template_set(root, tmp_path):
    """`packer validate` of packer/image with a full plan (Debian's Packer 1.6.6 or newer)."""
    import subprocess

    variables = {
        "image_name": "app", "image_version": "2026.1127.141438", "source_image": str(tmp_path / "base.qcow2"),
        "output_dir": str(tmp_path / "out"), "manifest_path": str(tmp_path / "m.json"), "run_id": "r",
        "playbook": str(root / "playbooks" / "app.yml"), "ssh_private_key_file": str(tmp_path / "k"),
        "finalize_script": str(root / "packer" / "finalize.sh"), "use_backing_file": True,
        "image_release": str(identity.write_release(tmp_path / "image-release", {"image_name": "t"})),
        "ansible_command": str(Path(sys.executable).parent / "ansible-playbook"),
    }
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    var_file = packer.write_var_file(tmp_path / "v.json", variables)
    env = packer.build_env({"PACKER_CACHE_DIR": str(tmp_path / "cache")})
    done = subprocess.run(["packer", "validate", f"-var-file={var_file}", str(root / "packer" / "image")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(["packer", "validate", "-var", "accelerator=hvf", f"-var-file={var_file}",
                           str(root / "packer" / "image")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode != 0 and "accelerator must be kvm or tcg" in done.stdout + done.stderr


def fake_packer(tmp_path, version):
    """A stand-in packer that records its argv; fails loudly on anything but version and init."""
    calls = tmp_path / "calls"
    script = tmp_path / "packer"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case "$1" in
  version) echo "Packer v{version}" ;;
  init) exit 0 ;;
  *) echo "unexpected: $@" >&2; exit 99 ;;
esac
""")
    script.chmod(0o755)
    return str(script), calls


def test_modern_packer_gets_packer_init_and_1_6_6_does_not(root, tmp_path):
    (tmp_path / "m").mkdir()
    modern, calls = fake_packer(tmp_path / "m", "1.11.2")
    plugins = root / "packer" / "plugins.pkr.hcl"
    assert packer.prepare(packer.version(modern), plugins, tmp_path / "init.log", cache=tmp_path / "c",
                          packer=modern) is True
    assert calls.read_text().splitlines() == ["version", f"init -upgrade=false {plugins}"]
    (tmp_path / "o").mkdir()
    old, old_calls = fake_packer(tmp_path / "o", "1.6.6")
    assert packer.prepare(packer.version(old), plugins, tmp_path / "init.log", cache=tmp_path / "c",
                          packer=old) is False
    assert old_calls.read_text().splitlines() == ["version"]


def test_too_old_or_missing_packer(tmp_path):
    (tmp_path / "a").mkdir()
    ancient, _ = fake_packer(tmp_path / "a", "1.5.0")
    with pytest.raises(ToolMissing, match="too old"):
        packer.version(ancient)
    with pytest.raises(ToolMissing, match="packer not found"):
        packer.version(str(tmp_path / "nope"))


def test_plugins_file_names_every_plugin_the_templates_use(root):
    text = (root / "packer" / "plugins.pkr.hcl").read_text()
    for plugin in ("github.com/hashicorp/qemu", "github.com/hashicorp/ansible", "github.com/hashicorp/amazon"):
        assert plugin in text
