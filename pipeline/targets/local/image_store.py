"""The local image store: each image at a stable, content-addressed path.

A child qcow2 records its parent's absolute path as its backing file, so a
stored image must never move or change: it lives at
``<store>/sha256-<digest>/<name>-<version>.qcow2``, read-only, and the digest is
its artifact id. Files arrive by rename from the same file system, never half-copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from pipeline.errors import KilnError


def digest_file(path: Path, chunk: int = 4 << 20) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def put(store: Path, source: Path, name: str, version: str) -> tuple[str, Path]:
    """Move ``source`` into the store; return its artifact id and final path."""
    hexdigest = digest_file(source)
    folder = store / f"sha256-{hexdigest}"
    final = folder / f"{name}-{version}.qcow2"
    folder.mkdir(parents=True, exist_ok=True)
    if final.exists():
        source.unlink()
    else:
        tmp = folder / f".{final.name}.partial"
        try:
            os.replace(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            source.unlink()
        tmp.chmod(0o444)
        os.replace(tmp, final)
    return f"sha256:{hexdigest}", final


def backing_file(image: Path) -> str | None:
    """The backing file a qcow2 names, or None for a standalone image."""
    try:
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", str(image)],
                                         check=True, capture_output=True, text=True).stdout)
    except subprocess.CalledProcessError as exc:
        raise KilnError(f"qemu-img cannot read {image}: {exc.stderr.strip()}") from None
    return info.get("full-backing-filename") or info.get("backing-filename")
