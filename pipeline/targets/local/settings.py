"""The local target's settings: ``[local]`` in kiln.toml (defaults < kiln.toml < command line).

- ``builder`` — how local layers are built when neither the command line
  (``--builder``) nor the image's own ``builder`` key says: ``packer`` (Packer's
  qemu builder, a VM per build) or ``chroot`` (Ansible in a chroot of the
  mounted image, at native speed).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipeline.config import CONFIG_FILE, NAME_RE
from pipeline.errors import ConfigError

KEYS = ("builder",)


def default_builder(root: Path) -> str:
    """``[local] builder``, checked; "" when it is not set."""
    path = root / CONFIG_FILE
    text = path.read_text() if path.exists() else ""
    try:
        table = tomllib.loads(text).get("local", {})
    except tomllib.TOMLDecodeError:
        return ""  # config.load reports a broken file, with its line
    line = next((n for n, ln in enumerate(text.splitlines(), 1) if ln.strip() == "[local]"), 1)
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{path}:{line}: [local] {key}: unknown setting", hint=f"known: {', '.join(KEYS)}")
    builder = table.get("builder", "")
    if not isinstance(builder, str) or (builder and not NAME_RE.match(builder)):
        raise ConfigError(f"{path}:{line}: [local] builder must be a builder's name", hint='e.g. builder = "chroot"')
    return builder
