# The one build every layer uses: wait for first boot, run the layer's playbook,
# then finalise (the shutdown command) so the image keeps no build access.

build {
  sources = ["source.qemu.image", "source.amazon-ebs.image"]

  # For AWS API emulators (moto, LocalStack): their instances are not machines, so
  # nothing can be provisioned; the AWS-facing half of a bake still runs for real.
  source "amazon-ebs.image" {
    name         = "emulator"
    communicator = "none"
  }

  provisioner "shell" {
    except = ["amazon-ebs.emulator"]
    inline = ["cloud-init status --wait > /dev/null || true"]
  }

  provisioner "ansible" {
    except           = ["amazon-ebs.emulator"]
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

  # Last: install the finaliser that the shutdown command runs as root. It cannot be
  # a provisioner itself: once it deletes the logged-in user, nothing more can run.
  provisioner "file" {
    except      = ["amazon-ebs.emulator"]
    source      = var.finalize_script
    destination = "/tmp/kiln-finalize"
  }

  provisioner "shell" {
    except = ["amazon-ebs.emulator"]
    inline = ["sudo install -m 0755 /tmp/kiln-finalize /usr/local/sbin/kiln-finalize && rm -f /tmp/kiln-finalize"]
  }

  # On EC2 there is no shutdown command: finalise as the very last step; the
  # instance powers itself off and Packer then stops it and registers the AMI.
  provisioner "shell" {
    only              = ["amazon-ebs.image"]
    inline            = ["sudo /usr/local/sbin/kiln-finalize"]
    expect_disconnect = true
    skip_clean        = true
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
