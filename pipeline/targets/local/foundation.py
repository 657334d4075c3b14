"""The local foundation: a bootable Debian qcow2 made with mmdebstrap, cached by recipe digest.

Every local layer starts from it, as AWS layers start from Debian's official AMI.
Building it takes about a minute and needs the network, so a machine builds each
recipe once: the result lives at ``<cache>/foundation/<digest>/foundation.qcow2``
and is only ever replaced by an atomic rename of a complete build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline import machine, proc
from pipeline.errors import ConfigError, KilnError, ToolMissing

# Bump when the way a recipe becomes a disk changes (partitioning, boot loader, ...).
DISK_FORMAT = "mbr-ext4-extlinux-1"
ROOT_UUID = "4b696c6e-0000-4000-8000-666f756e6461"
PARTITION_OFFSET = 1024 * 1024
MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")
MIN_MMDEBSTRAP = (1, 0)  # --customize-hook with "$1", tarball output from root mode
FOUNDATION_TOOLS = ("mmdebstrap", "mkfs.ext4", "sfdisk", "extlinux", "losetup", "qemu-img")


@dataclass(frozen=True)
class Recipe:
    """The foundation recipe folder and what it asks for."""

    folder: Path
    suite: str
    variant: str
    architecture: str
    sources: tuple[str, ...]
    packages: tuple[str, ...]
    disk_size_mib: int

    @classmethod
    def load(cls, folder: Path) -> Recipe:
        """Read ``recipe.toml`` from ``folder``; errors name the file."""
        path = folder / "recipe.toml"
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: foundation recipe not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        try:
            return cls(folder=folder, suite=data["suite"], variant=data.get("variant", "minbase"),
                       architecture=data.get("architecture", "amd64"),
                       sources=tuple(data["sources"]), packages=tuple(data["packages"]),
                       disk_size_mib=int(data.get("disk_size_mib", 4096)))
        except KeyError as exc:
            raise ConfigError(f"{path}: missing key {exc.args[0]!r}") from exc

    def digest(self) -> str:
        """sha256 over every file of the recipe folder and the disk format."""
        h = hashlib.sha256(DISK_FORMAT.encode())
        for f in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(self.folder)).encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
        return "sha256:" + h.hexdigest()


def cached_path(recipe: Recipe, cache: Path) -> Path:
    """Where the foundation for ``recipe`` lives once built."""
    return cache / "foundation" / recipe.digest().split(":", 1)[1][:16] / "foundation.qcow2"


def mmdebstrap_invocation(recipe: Recipe, tarball: Path) -> proc.Invocation:
    """The mmdebstrap command that makes the root filesystem tarball.

    Its scratch folders go beside the tarball (``TMPDIR``), inside the build's work
    folder: an mmdebstrap killed after the stop grace cannot clean up after itself,
    and the work folder is removed whatever way the build ends.
    """
    hook = recipe.folder / "customize.sh"
    return proc.Invocation(argv=(
        "mmdebstrap", f"--variant={recipe.variant}", f"--architectures={recipe.architecture}",
        "--include=" + ",".join(recipe.packages),
        f"--customize-hook=sh {hook} \"$1\" {ROOT_UUID}",
        recipe.suite, str(tarball), *recipe.sources,
    ), env={"TMPDIR": str(tarball.parent / "tmp")})


def disk_invocations(root: Path, raw: Path, size_mib: int) -> list[proc.Invocation]:
    """Commands that turn an unpacked root into a partitioned raw disk (no mounting)."""
    fs_kib = size_mib * 1024 - PARTITION_OFFSET // 1024
    return [
        proc.Invocation(("truncate", "-s", f"{size_mib}M", str(raw))),
        proc.Invocation(("sfdisk", "-q", str(raw))),  # stdin script given by the caller
        proc.Invocation(("mkfs.ext4", "-q", "-F", "-O", "^64bit,^metadata_csum", "-U", ROOT_UUID,
                         "-L", "root", "-E", f"offset={PARTITION_OFFSET}", "-d", str(root),
                         str(raw), f"{fs_kib}k")),
    ]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def abandoned_builds(cache: Path) -> list[Path]:
    """Work folders of foundation builds that were killed outright: any there while no build holds the lock."""
    root = cache / "foundation"
    if not root.is_dir():
        return []
    with open(root / ".lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a build is running: its folder is not abandoned
        try:
            return sorted(root.glob(".build-*"))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure(recipe: Recipe, cache: Path, log: Path,
           progress: Callable[[str], None] = lambda _msg: None) -> Path:
    """Return the cached foundation for ``recipe``, building it first if needed.

    Concurrent callers serialise on a lock; the loser finds the winner's result.
    """
    target = cached_path(recipe, cache)
    if target.exists():
        return target
    with _locked(target.parent.parent / ".lock"):
        if target.exists():
            return target
        missing = [t for t in FOUNDATION_TOOLS if shutil.which(t) is None]
        if missing or not MBR_BIN.exists():
            raise ToolMissing(f"cannot build the foundation: missing {', '.join(missing or [str(MBR_BIN)])}",
                              hint="install them: apt-get install mmdebstrap e2fsprogs fdisk extlinux "
                                   "syslinux-common qemu-utils (or ./setup.sh)")
        proc.require_version(["mmdebstrap", "--version"], "mmdebstrap", MIN_MMDEBSTRAP,
                             hint="install a newer one: apt-get install mmdebstrap (Debian 12 has 1.3)")
        if os.geteuid() != 0:
            raise KilnError("building the foundation needs root (loop device and mount for extlinux)",
                            hint="run the bake once with sudo, or as root, to fill the cache")
        progress("building the Debian foundation with mmdebstrap (once per recipe)")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent.parent))
        started = time.monotonic()
        try:
            _build(recipe, work, log)
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / "recipe.digest").write_text(recipe.digest() + "\n")
            (target.parent / "build-seconds").write_text(f"{time.monotonic() - started:.1f}\n")
            os.replace(work / "foundation.qcow2", target)
        finally:
            machine.remove_tree(work)
    return target


def _build(recipe: Recipe, work: Path, log: Path) -> None:
    tarball = work / "rootfs.tar"
    (work / "tmp").mkdir()
    proc.run(mmdebstrap_invocation(recipe, tarball), log, what="mmdebstrap")
    root = work / "root"
    root.mkdir()
    proc.run(proc.Invocation(("tar", "-C", str(root), "-xpf", str(tarball))), log, what="tar")
    tarball.unlink()
    raw = work / "disk.raw"
    truncate, sfdisk, mkfs = disk_invocations(root, raw, recipe.disk_size_mib)
    proc.run(truncate, log)
    _sfdisk(sfdisk, log)
    proc.run(mkfs, log, what="mkfs.ext4")
    shutil.rmtree(root)
    _install_bootloader(raw, work, log)
    proc.run(proc.Invocation(("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                              str(work / "foundation.qcow2"))), log, what="qemu-img convert")
    raw.unlink()


def _sfdisk(inv: proc.Invocation, log: Path) -> None:
    import subprocess

    with open(log, "ab") as out:
        done = subprocess.run(inv.argv, input=b"label: dos\nstart=2048, type=83, bootable\n",
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise KilnError("sfdisk could not partition the foundation disk", log=log)


def _install_bootloader(raw: Path, work: Path, log: Path) -> None:
    """extlinux needs a mounted file system: loop-mount the partition just for that."""
    loop = proc.capture(["losetup", "-f", "--show", "-o", str(PARTITION_OFFSET), str(raw)]).strip()
    mnt = work / "mnt"
    mnt.mkdir()
    try:
        proc.run(proc.Invocation(("mount", loop, str(mnt))), log, what="mount")
        try:
            proc.run(proc.Invocation(("extlinux", "--install", str(mnt / "boot/extlinux"))), log,
                     what="extlinux")
        finally:
            proc.run(proc.Invocation(("umount", str(mnt))), log, check=False)
    finally:
        proc.run(proc.Invocation(("losetup", "-d", loop)), log, check=False)
    with open(raw, "r+b") as disk:
        disk.write(MBR_BIN.read_bytes()[:440])
