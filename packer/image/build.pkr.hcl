# The one build every layer uses: wait for first boot, run the layer's playbook,
# then finalise (the shutdown command) so the image keeps no build access.

build {
  sources = ["source.qemu.image", "source.amazon-ebs.image", "source.amazon-chroot.image"]

  # Kiln's own API-only tests (KILN_AWS_API_ONLY=1): nothing is provisioned against an
  # emulator's instances, and the images are recorded unverified.
  source "amazon-ebs.image" {
    name         = "emulator"
    communicator = "none"
  }

  # First boot done: the shell test of cloud-init's own finish mark that the gate uses (CLOUD_INIT_DONE in
  # pipeline/vm.py), not `cloud-init status --wait`, a Python process that takes seconds to start under
  # emulation. A cloud-init that ended in errors does not stop the build here; the playbook and the specs judge.
  provisioner "shell" {
    except = ["amazon-ebs.emulator", "amazon-chroot.image"]
    inline = ["until [ ! -e /run/cloud-init/enabled ] || [ -e /run/cloud-init/result.json ]; do sleep 0.2; done"]
  }

  provisioner "ansible" {
    except           = ["amazon-ebs.emulator", "amazon-chroot.image"]
    playbook_file    = var.playbook
    command          = var.ansible_command
    user             = var.ssh_username
    use_proxy        = false
    ansible_env_vars = var.ansible_env_vars
    extra_arguments = [
      "--extra-vars", var.ansible_extra_vars,
      "--extra-vars", "ansible_python_interpreter=/usr/bin/python3",
    ]
  }

  # Last: install the finaliser that the shutdown command runs as root, and stamp the
  # image's identity (Kiln's, not the playbook's). The finaliser cannot be a provisioner
  # itself: once it deletes the logged-in user, nothing more can run.
  provisioner "file" {
    except      = ["amazon-ebs.emulator"]
    source      = var.image_release
    destination = "/tmp/kiln-image-release"
  }

  provisioner "file" {
    except      = ["amazon-ebs.emulator", "amazon-chroot.image"]
    source      = var.finalize_script
    destination = "/tmp/kiln-finalize"
  }

  provisioner "shell" {
    except = ["amazon-ebs.emulator", "amazon-chroot.image"]
    inline = [
      "sudo install -m 0644 -o root -g root /tmp/kiln-image-release /etc/image-release",
      "sudo install -m 0755 /tmp/kiln-finalize /usr/local/sbin/kiln-finalize",
      "rm -f /tmp/kiln-finalize /tmp/kiln-image-release",
    ]
  }

  # On EC2 there is no shutdown command: finalise as the very last step; the
  # instance powers itself off and Packer then stops it and registers the AMI.
  provisioner "shell" {
    only              = ["amazon-ebs.image"]
    inline            = ["sudo /usr/local/sbin/kiln-finalize"]
    expect_disconnect = true
    skip_clean        = true
  }

  # amazon-chroot: the playbook runs in a chroot of the source AMI's volume on the build host,
  # services kept from starting (policy-rc.d), then the same finaliser, with nothing to power off.
  provisioner "shell" {
    only   = ["amazon-chroot.image"]
    inline = ["printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d", "chmod 0755 /usr/sbin/policy-rc.d"]
  }

  provisioner "ansible" {
    only             = ["amazon-chroot.image"]
    playbook_file    = var.playbook
    command          = var.ansible_command
    use_proxy        = false
    inventory_file   = var.chroot_inventory
    ansible_env_vars = concat(var.ansible_env_vars, ["SYSTEMD_OFFLINE=1", "debian_chroot=kiln"])
    extra_arguments = [
      "--extra-vars", var.ansible_extra_vars,
      "--extra-vars", "ansible_python_interpreter=/usr/bin/python3",
    ]
  }

  provisioner "shell" {
    only   = ["amazon-chroot.image"]
    inline = ["install -m 0644 -o root -g root /tmp/kiln-image-release /etc/image-release"]
  }

  provisioner "shell" {
    only             = ["amazon-chroot.image"]
    script           = var.finalize_script
    environment_vars = ["KILN_FINALIZE_CHROOT=1"]
  }

  provisioner "shell" {
    only   = ["amazon-chroot.image"]
    inline = ["rm -f /usr/sbin/policy-rc.d"]
  }

  post-processor "manifest" {
    output     = var.manifest_path
    strip_path = false
    custom_data = {
      image_name    = var.image_name
      image_version = var.image_version
      run_id        = var.run_id
      source_image  = var.source_image
    }
  }
}
