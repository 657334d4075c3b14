"""Packer: plan a build (argv, env, var file) and read its result from the manifest.

The pipeline never scrapes Packer's log for artifact ids: the ``manifest``
post-processor writes a JSON record of each build, and ``read_manifest`` is the
only way a build's output enters Kiln.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import proc
from pipeline.errors import BuildFailed, ToolMissing

SHIMS = Path(__file__).parent / "shims"
MIN_VERSION = (1, 6, 6)


@dataclass(frozen=True)
class BuildOutput:
    """What one Packer build produced, as its manifest says."""

    builder_type: str
    artifact_id: str
    files: tuple[Path, ...]
    custom_data: Mapping[str, str]
    run_uuid: str


def parse_version(text: str) -> tuple[int, int, int]:
    """``Packer v1.6.6`` / ``1.11.2`` → (1, 6, 6)."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise ToolMissing(f"cannot read Packer's version from {text.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def version(packer: str = "packer") -> tuple[int, int, int]:
    """The installed Packer's version; ToolMissing when absent or too old."""
    try:
        found = parse_version(proc.capture([packer, "version"], env={"CHECKPOINT_DISABLE": "1"}))
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable packer"
        if isinstance(exc, ToolMissing):
            raise
        raise ToolMissing("packer not found", hint="install it: apt-get install packer (or ./setup.sh)") from None
    if found < MIN_VERSION:
        raise ToolMissing(f"packer {'.'.join(map(str, found))} is too old (need >= 1.6.6)",
                          hint="install a newer Packer")
    return found


def needs_init(packer_version: tuple[int, int, int]) -> bool:
    """Packer >= 1.7 installs plugins with ``packer init``; 1.6.x has them built in."""
    return packer_version >= (1, 7, 0)


def init_invocation(plugins_file: Path, *, workdir: Path, cache: Path, packer: str = "packer") -> proc.Invocation:
    """``packer init`` of the plugins file (Packer >= 1.7 only)."""
    return invocation((packer, "init", "-upgrade=false", str(plugins_file)), workdir=workdir, cache=cache)


def prepare(packer_version: tuple[int, int, int], plugins_file: Path, log: Path, *, cache: Path,
            packer: str = "packer") -> bool:
    """Install the plugins modern Packer needs; Debian's 1.6.6 has them built in. True when init ran."""
    if not needs_init(packer_version):
        return False
    result = proc.run(init_invocation(plugins_file, workdir=log.parent, cache=cache, packer=packer), log, check=False)
    if result.returncode != 0:
        raise ToolMissing(f"packer init could not install the plugins of {plugins_file.name}",
                          hint="check network access to the plugin registry", log=log)
    return True


def build_invocation(*, template_dir: Path, var_file: Path, only: str, workdir: Path, cache: Path,
                     env: Mapping[str, str], packer: str = "packer") -> proc.Invocation:
    """The ``packer build`` command for one layer with one source (``qemu.image``, ``amazon-ebs.image``, …)."""
    return invocation((packer, "build", "-color=false", "-timestamp-ui", f"-only={only}", f"-var-file={var_file}",
                       str(template_dir)), workdir=workdir, cache=cache, env=env)


def validate_invocation(*, template_dir: Path, var_file: Path, only: str, workdir: Path, cache: Path,
                        packer: str = "packer") -> proc.Invocation:
    """``packer validate`` of the template set for one source."""
    return invocation((packer, "validate", f"-only={only}", f"-var-file={var_file}", str(template_dir)),
                      workdir=workdir, cache=cache)


def invocation(argv: tuple[str, ...], *, workdir: Path, cache: Path,
               env: Mapping[str, str] | None = None) -> proc.Invocation:
    """Every Packer command: run in ``workdir`` (a crash.log lands beside the run's logs, never in the
    project) with its cache in ``cache`` (not a ``packer_cache/`` in whatever folder invoke started in)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return proc.Invocation(argv=argv, env=build_env({"PACKER_CACHE_DIR": str(cache), **(env or {})}), cwd=workdir)


def build_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Environment for Packer: no phoning home, the qemu-img shim first on PATH."""
    import os

    env = {"CHECKPOINT_DISABLE": "1", "PACKER_NO_COLOR": "1",
           "PATH": f"{SHIMS}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    env.update(extra)
    return env


def write_var_file(path: Path, variables: Mapping[str, Any]) -> Path:
    """Write variables as a JSON var file (``*.json``; Packer reads it like .pkrvars.hcl)."""
    if path.suffix != ".json":
        raise ValueError("Packer only reads JSON var files named *.json")
    path.write_text(json.dumps(dict(variables), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(path: Path, run_uuid: str | None = None) -> BuildOutput:
    """The last build recorded in a manifest file (optionally of one Packer run)."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildFailed(f"Packer wrote no manifest at {path}", hint="the build did not finish") from None
    except json.JSONDecodeError as exc:
        raise BuildFailed(f"{path}: unreadable Packer manifest ({exc})") from None
    builds = doc.get("builds") or []
    if run_uuid is not None:
        builds = [b for b in builds if b.get("packer_run_uuid") == run_uuid]
    if not builds:
        raise BuildFailed(f"{path}: manifest records no build")
    last = builds[-1]
    return BuildOutput(
        builder_type=str(last.get("builder_type", "")),
        artifact_id=str(last.get("artifact_id", "")),
        files=tuple(Path(f["name"]) for f in last.get("files") or []),
        custom_data={str(k): str(v) for k, v in (last.get("custom_data") or {}).items()},
        run_uuid=str(last.get("packer_run_uuid", "")),
    )
