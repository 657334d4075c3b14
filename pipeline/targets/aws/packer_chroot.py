"""The aws target's chroot builder: Packer's ``amazon-chroot`` source, for a build host that is itself on EC2.

A volume made from the source AMI (Debian's, or the parent's) is attached to
the build host, mounted, and the layer's playbook runs in a chroot of it through
Ansible's chroot connection, services kept from starting; then the same
finaliser as every build; then Packer snapshots the volume and registers the
AMI — no instance launched per build. It needs root on an EC2 instance: the
emulator Kiln's tests use has no volumes to attach, so only ``invoke validate``
(``packer validate`` of this source) is proven here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pipeline.bake.layer import Layer
from pipeline.bake.run import Run
from pipeline.errors import ToolMissing
from pipeline.packer import build as packer_build
from pipeline.targets.aws import account as aws


class PackerChroot(packer_build.PackerBuilder):
    """Packer's amazon-chroot builder."""

    name = "chroot"
    template_sources = ("amazon-chroot.image",)

    def __init__(self, target: aws.AwsPlace) -> None:
        super().__init__(target)
        self.place = target

    def check_versions(self) -> None:
        """The volume is attached and mounted on this machine: it must run as root."""
        if os.geteuid() != 0:
            raise ToolMissing("the aws chroot builder needs root on an EC2 build host",
                              hint="run the bake there as root, or use --builder packer")

    def build(self, run: Run, layer: Layer) -> Mapping[str, str]:
        """Build and register the AMI in a chroot of its volume; {region: AMI} from Packer's manifest."""
        output = packer_build.build(run, layer, only="amazon-chroot.image", variables=self.variables(run, layer))
        return aws.parse_artifact_id(output.artifact_id)

    def variables(self, run: Run, layer: Layer) -> dict[str, object]:
        """The Packer variables of an amazon-chroot build, with the inventory naming its chroot (written here)."""
        s = self.place.settings
        inventory = layer.scratch / "chroot-inventory"
        inventory.write_text(f"/mnt/kiln-chroot/{run.run_id} ansible_connection=community.general.chroot\n")
        return {
            **packer_build.common_variables(run, layer),
            "aws_region": s.region,
            "aws_ami_regions": [r for r in s.regions if r != s.region],
            "aws_ami_users": list(s.share_accounts),
            "aws_tags": self.place.layer_tags(run, layer),
            "aws_endpoint_ec2": aws.endpoint("ec2") or "",
            "chroot_inventory": str(inventory),
        }
