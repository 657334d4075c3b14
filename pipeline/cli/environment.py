"""The ``KILN_*`` variables, checked before any task does anything.

A bad value found halfway through a bake costs a failed record, a Packer
error that never names the variable, or a traceback from the crash handler
itself. Each variable here is checked once, at the command-line edge, and
fails in one line that names it. The ``KILN_AWS_<KEY>`` settings of ``[aws]``
are checked with the rest of the aws settings (``targets/aws/settings.py``),
``KILN_AWS_API_ONLY`` and ``KILN_AWS_SSH_CIDR`` here; ``KILN_BUILDER``
against the target's builders; ``KILN_ACTOR`` is free text.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from pipeline.errors import ConfigError

Check = Callable[[str, str], None]


def folder_problem(path: Path) -> str:
    """Why this user could not make or write the folder ``path`` ("" when it can)."""
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, so the folder cannot be made"
    if not os.access(existing, os.W_OK | os.X_OK) or os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{existing} is not writable"
    return ""


def state_folder(default: str) -> Check:
    """A folder Kiln keeps state in: absent is fine (it is created), a file or a read-only place is not."""

    def check(name: str, value: str) -> None:
        hint = f"point {name} at a folder this user can write, or unset it (default {default})"
        path = Path(value).absolute()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{name}={value}: is a file, not a folder", hint=hint)
        if problem := folder_problem(path):
            raise ConfigError(f"{name}={value}: {problem}", hint=hint)

    return check


def catalog_file(name: str, value: str) -> None:
    """A SQLite catalog file: absent is fine (it is made, in a folder that can be), a folder is not."""
    hint = (f"point {name} at a catalog file in a folder this user can write, e.g. /srv/kiln/catalog.db, or unset "
            "it (default $KILN_HOME/catalog.db)")
    path = Path(value).absolute()
    if path.is_dir():
        raise ConfigError(f"{name}={value}: is a folder, not a catalog file", hint=hint)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"{name}={value}: this user cannot read and write it", hint=hint)
    if problem := folder_problem(path.parent):  # the catalog's write-ahead log and lease file go beside it
        raise ConfigError(f"{name}={value}: {problem}", hint=hint)


def project_folder(name: str, value: str) -> None:
    """The project must exist: Kiln reads it, never creates it."""
    hint = f"point {name} at a folder with a kiln.toml, or unset it (default: this repository)"
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"{name}={value}: no such folder", hint=hint)
    if not path.is_dir():
        raise ConfigError(f"{name}={value}: is a file, not a folder", hint=hint)


def one_of(*allowed: str) -> Check:
    """A value from a fixed list."""

    def check(name: str, value: str) -> None:
        if value not in allowed:
            raise ConfigError(f"{name}={value}: invalid value", hint=f"allowed: {', '.join(allowed)}")

    return check


LONGEST_LEASE = 7 * 86400


def seconds(name: str, value: str) -> None:
    """A duration in seconds."""
    try:
        ok = math.isfinite(float(value)) and float(value) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{name}={value}: not a number of seconds", hint="e.g. 600")


def positive_seconds(name: str, value: str) -> None:
    """A duration in seconds, more than none."""
    seconds(name, value)
    if float(value) <= 0:
        raise ConfigError(f"{name}={value}: must be more than 0 seconds", hint="e.g. 180")


def lease_seconds(name: str, value: str) -> None:
    """A lease's time to live: more than none, at most a week (a renewer waits a third of it)."""
    positive_seconds(name, value)
    if float(value) > LONGEST_LEASE:
        raise ConfigError(f"{name}={value}: more than a week ({LONGEST_LEASE} s)",
                          hint="e.g. 180: a dead holder's image waits this long before it is taken over")


def pause_point(name: str, value: str) -> None:
    """``<step>:<image>``."""
    if not re.fullmatch(r"[a-z]+:[a-z][a-z0-9-]*", value):
        raise ConfigError(f"{name}={value}: not STEP:IMAGE", hint="e.g. record:app")


def cidr(name: str, value: str) -> None:
    """An address block, as AWS security groups take it."""
    try:
        ipaddress.ip_network(value, strict=False)
        ok = "/" in value
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{name}={value}: not an address block", hint="e.g. 203.0.113.7/32 or 10.0.0.0/16")


CHECKS: Mapping[str, Check] = {
    "KILN_HOME": state_folder("~/.local/share/kiln"),
    "KILN_CACHE": state_folder("~/.cache/kiln"),
    "KILN_PROJECT": project_folder,
    "KILN_CATALOG": catalog_file,
    "KILN_ACCEL": one_of("tcg", "kvm"),
    "KILN_PAUSE_AT": pause_point,
    "KILN_PAUSE_SECONDS": seconds,
    "KILN_LEASE_SECONDS": lease_seconds,
    "KILN_WAIT_SECONDS": positive_seconds,
    "KILN_TOOL_SECONDS": positive_seconds,
    "KILN_BOOT_SECONDS": positive_seconds,
    "KILN_AWS_API_ONLY": one_of("0", "1"),
    "KILN_AWS_SSH_CIDR": cidr,
}


def check(env: Mapping[str, str] | None = None) -> None:
    """Every set ``KILN_*`` variable in ``CHECKS``, in that order; the first bad one raises ConfigError."""
    env = os.environ if env is None else env
    for name, check_one in CHECKS.items():
        value = env.get(name, "")
        if value:
            check_one(name, value)
