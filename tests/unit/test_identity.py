"""/etc/image-release as Kiln writes it: every field, shell-sourceable, root-owned 0644."""

import subprocess

from pipeline import identity

IDENTITY = {"image_name": "app", "image_version": "2026.1128.120923", "image_parent": "base@2026.1128.120714",
            "git_commit": "0123abc", "git_dirty": "false", "bake_key": "sha256:" + "f" * 64, "builder": "chroot"}


def test_every_field_in_order():
    assert identity.release_text(IDENTITY).splitlines()[1:] == [
        "IMAGE_NAME=app", "IMAGE_VERSION=2026.1128.120923", "IMAGE_PARENT=base@2026.1128.120714",
        "GIT_COMMIT=0123abc", "GIT_DIRTY=false", f"BAKE_KEY=sha256:{'f' * 64}", "BUILDER=chroot"]


def test_the_shell_reads_back_what_was_written(tmp_path):
    odd = {**IDENTITY, "image_parent": "foundation@1a2b it's $HOME"}
    path = identity.write_release(tmp_path / "image-release", odd)
    out = subprocess.run(["sh", "-c", f". {path}; printf '%s' \"$IMAGE_PARENT\""], capture_output=True, text=True)
    assert out.stdout == odd["image_parent"]


def test_stamp_writes_a_root_owned_world_readable_file(tmp_path):
    (tmp_path / "etc").mkdir()
    identity.stamp(tmp_path, IDENTITY)
    st = (tmp_path / "etc/image-release").stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert (tmp_path / "etc/image-release").read_text() == identity.release_text(IDENTITY)
