"""The local target's Packer builder: ``qemu.image`` on the parent's stored image (or the foundation).

The VM gets a per-build SSH key and user through a cloud-init NoCloud seed;
Packer's shutdown command runs the finaliser, so the image keeps no way in. A
child layer uses its parent as a qcow2 backing file and stores only its delta.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline import proc, vm
from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import BuildFailed
from pipeline.packer import build as packer_build
from pipeline.verify import seed

MIN_QEMU = (5, 2)  # -accel, and qemu-img's -F for backing files
BUILD_USER = "packer"


class PackerQemu(packer_build.PackerBuilder):
    """Packer's qemu builder, under KVM where it works and TCG everywhere else."""

    template_sources = ("qemu.image",)
    tools = (("packer", "packer"), ("qemu-system-x86_64", "qemu-system-x86"), ("qemu-img", "qemu-utils"),
             ("xorriso", "xorriso"), ("ssh-keygen", "openssh-client"), ("ssh", "openssh-client"))

    def check_versions(self) -> None:
        """QEMU new enough for ``-accel`` and backing formats."""
        proc.require_version(["qemu-system-x86_64", "--version"], "QEMU", MIN_QEMU,
                             hint="install a newer one: apt-get install qemu-system-x86 qemu-utils (or ./setup.sh)")

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        """Build the layer's qcow2; ``{"file": path}`` of Packer's output (still in the scratch folder)."""
        access = seed.make_access(layer.scratch / "build-access", BUILD_USER, f"build-{run.run_id}", "kiln-build")
        # Only the public half is kept: the specs check that it is gone from the image.
        (layer.log_dir / "build-key.pub").write_text(access.public_key + "\n")
        output = packer_build.build(run, layer, only="qemu.image", variables=packer_variables(run, layer, access))
        images = [f for f in output.files if f.suffix == ".qcow2"]
        if not images:
            raise BuildFailed(f"{layer.ref}: Packer's manifest lists no qcow2 file", log=layer.log_dir / "packer.log")
        return {"file": str(images[0])}


def packer_variables(run: Run, layer: Layer, access: seed.Access) -> dict[str, object]:
    """The Packer variables of one layer's local build (checked against the templates before use)."""
    return {
        **packer_build.common_variables(run, layer),
        "use_backing_file": layer.source.parent is not None,
        "ssh_username": access.user,
        "ssh_private_key_file": str(access.key),
        "seed_files": [str(f) for f in access.seed_files],
        "accelerator": vm.accelerator(),
        "serial_log": str(layer.log_dir / "build-serial.log"),
    }
