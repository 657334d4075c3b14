"""``/etc/image-release``: every image's identity, stamped by Kiln whatever its playbook contains.

Written in the finaliser's step on every builder and target — by the Packer
builds' finaliser install step, by the chroot builder and ``invoke converge``
into the mounted layer — from the same values Kiln passes to playbooks and
specs. No playbook writes it, so the idempotence check never sees it change.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

PATH = "etc/image-release"
FIELDS = (("IMAGE_NAME", "image_name"), ("IMAGE_VERSION", "image_version"), ("IMAGE_PARENT", "image_parent"),
          ("GIT_COMMIT", "git_commit"), ("GIT_DIRTY", "git_dirty"), ("BAKE_KEY", "bake_key"), ("BUILDER", "builder"))


def release_text(identity: Mapping[str, str]) -> str:
    """The file's content: shell-sourceable ``KEY=value`` lines, like /etc/os-release."""
    lines = ["# Written by Kiln when this image was baked. Shell-sourceable, like /etc/os-release."]
    lines += [f"{key}={shlex.quote(identity[name])}" for key, name in FIELDS if name in identity]
    return "\n".join(lines) + "\n"


def write_release(path: Path, identity: Mapping[str, str]) -> Path:
    """Write the text to ``path`` (a file Kiln hands to Packer's file provisioner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(release_text(identity))
    return path


def stamp(root: Path, identity: Mapping[str, str]) -> None:
    """Write ``/etc/image-release`` into the system mounted at ``root``: root-owned, mode 0644."""
    target = root / PATH
    target.write_text(release_text(identity))
    os.chown(target, 0, 0)
    target.chmod(0o644)
