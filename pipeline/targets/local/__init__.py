"""The local target: qcow2 images in a content-addressed store, verified in throwaway QEMU VMs.

A root layer starts from the Debian foundation (built once per recipe with
mmdebstrap and cached), a child from its parent's stored image, which it uses
as a backing file. The catalog is the SQLite file in ``KILN_HOME`` (or ``KILN_CATALOG``). Nothing is
published outside the catalog: deployers resolve the file path from it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from pipeline import vm
from pipeline.bake.layer import Earlier, Layer, Source
from pipeline.bake.run import Run
from pipeline.catalog import Artifact, Catalog, ImageRecord
from pipeline.config import ImageSpec, Paths
from pipeline.errors import KilnError
from pipeline.progress import fmt_seconds
from pipeline.targets.base import Builder, Leftover
from pipeline.targets.local import foundation, image_store, settings, upkeep
from pipeline.targets.local.chroot_builder import ChrootBuilder
from pipeline.targets.local.integrity import CACHE_FILE, Integrity
from pipeline.targets.local.packer_qemu import PackerQemu
from pipeline.upkeep.janitor import CatalogView
from pipeline.upkeep.prune import Decision
from pipeline.verify.guest import Guest

VERIFY_USER = "kiln"


class LocalTarget:
    """QEMU images on this machine."""

    name = "local"
    # The chroot builder is the default: it passes every spec of base and app, several times faster
    # (invoke bench --builders). Packer's qemu builder stays for KVM release bakes and non-root users.
    builders: Mapping[str, type[Builder]] = {"chroot": ChrootBuilder, "packer": PackerQemu}
    step_labels: Mapping[str, str] = {}
    default_jobs = 1  # every build and verification VM runs on this machine's cores

    def __init__(self, paths: Paths, *, region: str = "") -> None:
        self.paths = paths
        self.default_builder = settings.default_builder(paths.project)
        self.integrity = Integrity(paths.home / CACHE_FILE)

    @classmethod
    def check_settings(cls, root: Path) -> None:
        """``[local]`` in kiln.toml."""
        settings.default_builder(root)

    def connect(self) -> None:
        """Nothing to log in to."""

    def open_catalog(self, *, create: bool = True) -> Catalog:
        """The SQLite catalog in KILN_HOME, or the file KILN_CATALOG names."""
        return Catalog.open(self.paths.catalog, create=create)

    def foundation_value(self) -> str:
        """The foundation recipe's digest."""
        return foundation.Recipe.load(self.paths.project / "packer" / "foundation").digest()

    def foundation_change(self, old: str, new: str) -> str:
        """The recipe changed."""
        return "foundation recipe changed"

    def root_label(self, foundation_value: str) -> str:
        """``foundation@<digest prefix>``."""
        return f"foundation@{foundation_value.partition(':')[2][:12]}"

    def artifact_of(self, record: ImageRecord) -> Artifact | None:
        """The stored file."""
        return record.artifact(self.name)

    def source(self, run: Run, spec: ImageSpec) -> Source:
        """The parent's verified image, or the foundation (built first when its recipe is new)."""
        if spec.parent is None:
            recipe = foundation.Recipe.load(run.project.root / "packer" / "foundation")
            started = time.monotonic()
            try:
                path = foundation.ensure(recipe, run.paths.cache, run.log_dir / "foundation.log",
                                         progress=lambda msg: run.reporter.line(f"foundation: {msg}"))
            except KeyboardInterrupt as exc:
                exc.where = f"during the foundation build, before {spec.name} (nothing of it was kept)"  # type: ignore[attr-defined]
                raise
            if time.monotonic() - started > 1:
                run.reporter.line(f"foundation: ready ({fmt_seconds(time.monotonic() - started)}) {path}")
            return Source(None, str(path), self.root_label(recipe.digest()))
        parent = run.catalog.latest(spec.parent)
        art = self.artifact_of(parent) if parent else None
        if parent is None or art is None or art.path is None or not Path(art.path).exists():
            raise KilnError(f"{spec.name}: no verified {spec.parent} image to build on",
                            hint=f"run: invoke bake {spec.parent}")
        self.integrity.check(Path(art.path), art.id)  # before anything is recorded or built on it
        return Source(parent, art.path, parent.ref)

    def find_earlier(self, run: Run, spec: ImageSpec, key: str) -> Earlier | None:
        """A bake of this key stopped after its image was stored. Called under the image's lock, so a
        ``building`` record is a bake that was killed; one whose image never reached the store is marked
        ``interrupted`` here."""
        found = None
        for rec in run.catalog.versions(spec.name):
            if rec.fingerprint != key or rec.status not in ("interrupted", "building"):
                continue
            art = self.artifact_of(rec)
            if art is not None and art.path and Path(art.path).exists():
                found = Earlier(rec.version, "verify", "resume — an earlier bake built and stored it; verifying, "
                                "not rebuilding", f"resumed by run {run.run_id}: its image was already stored",
                                artifacts=(art,),
                                built=run.builders[spec.name].evidence(Path(rec.log_dir)) if rec.log_dir else {})
            elif rec.status == "building":
                run.catalog.set_status(spec.name, rec.version, "interrupted", reason="left behind by a killed bake")
        return found

    def store(self, run: Run, layer: Layer) -> tuple[Artifact, ...]:
        """Move the qcow2 to its content-addressed, read-only path."""
        artifact_id, path = image_store.put(run.paths.store, Path(layer.built["file"]), layer.spec.name,
                                            layer.version)
        self.integrity.remember(path, artifact_id.partition(":")[2])
        return (Artifact(target=self.name, id=artifact_id, path=str(path)),)

    def usable(self, record: ImageRecord) -> tuple[Artifact, ...]:
        """The stored file, which must still be there."""
        art = self.artifact_of(record)
        if art is None or art.path is None or not Path(art.path).exists():
            raise KilnError(f"{record.ref}: its image file is missing, cannot re-verify",
                            hint=f"invoke bake {record.name} --force")
        self.integrity.check(Path(art.path), art.id)
        return (art,)

    def intact(self, record: ImageRecord) -> None:
        """Its stored file, if it still has one, has the content its artifact id names."""
        art = self.artifact_of(record)
        if art is not None and art.path and Path(art.path).exists():
            self.integrity.check(Path(art.path), art.id)

    @contextlib.contextmanager
    def guest(self, run: Run, layer: Layer) -> Iterator[Guest]:
        """A throwaway overlay of the stored image, booted with its own key; its ports forwarded to 127.0.0.1."""
        for stored in layer.artifacts:
            if stored.target == self.name and stored.path:
                self.integrity.check(Path(stored.path), stored.id)
        art = self.artifact_of_layer(layer)
        with vm.boot(Path(art), layer.scratch / "verify", layer.log_dir,
                     forwards=run.project.forwards(layer.spec.name), user=VERIFY_USER, name="verify",
                     run_id=run.run_id) as guest:
            yield guest

    def artifact_of_layer(self, layer: Layer) -> str:
        """The stored file of the layer under test."""
        return next(a.path for a in layer.artifacts if a.target == self.name and a.path)

    def publish(self, catalog: Catalog, images: Collection[str] | None = None, *, dry_run: bool = False) -> list[str]:
        """Deployers read the catalog itself: nothing to mirror."""
        return []

    def default_region(self, region: str) -> str | None:
        """No regions here: an artifact asked for in one is not found."""
        return region or None

    def in_use(self, catalog: Catalog) -> Mapping[str, str]:
        """Files in the backing chain of a running QEMU."""
        return upkeep.in_use()

    def delete(self, catalog: Catalog, doomed: Sequence[Decision]) -> list[str]:
        """Remove the stored files."""
        return upkeep.delete(catalog, doomed, self.paths.store)

    def leftovers(self, older_than: timedelta, view: Callable[[], CatalogView]) -> list[Leftover]:
        """Scratch folders of killed runs, and half-stored images and foundation builds (no catalog needed)."""
        return (upkeep.leftovers(self.paths.runs, older_than)
                + upkeep.abandoned_files(self.paths.store, self.paths.cache, older_than))

    def clean(self, leftovers: Sequence[Leftover]) -> list[str]:
        """Remove them."""
        return upkeep.clean(leftovers)

    def scope(self) -> str:
        """Where it looks."""
        return f"{self.paths.runs}, /tmp, {self.paths.store} and {self.paths.cache / 'foundation'}"
