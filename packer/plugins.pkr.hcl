# Plugins for Packer >= 1.7 (`packer init packer/plugins.pkr.hcl`). Kept apart from
# packer/image/: Packer 1.6.6 has these components built in and rejects this block.
packer {
  required_version = ">= 1.6.6"
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
    ansible = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/ansible"
    }
    amazon = {
      version = ">= 1.2.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}
