# One source per target. The pipeline selects it with -only=<type>.image.

source "qemu" "image" {
  iso_url          = var.source_image
  iso_checksum     = "none"
  disk_image       = true
  use_backing_file = var.use_backing_file
  format           = "qcow2"
  accelerator      = var.accelerator
  headless         = true
  memory           = var.memory
  cpus             = var.cpus
  disk_size        = var.disk_size
  output_directory = var.output_dir
  vm_name          = "${var.image_name}-${var.image_version}.qcow2"
  boot_wait        = "1s"
  vnc_bind_address = "127.0.0.1"
  cd_files         = var.seed_files
  cd_label         = "cidata"
  qemuargs = [
    # Packer's default port forward listens on every address: keep it on loopback.
    ["-netdev", "user,id=user.0,hostfwd=tcp:127.0.0.1:{{ .SSHHostPort }}-:22"],
    ["-serial", "file:${var.serial_log}"],
  ]
  communicator         = "ssh"
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "10m"
  shutdown_command     = "sudo /usr/local/sbin/kiln-finalize"
  shutdown_timeout     = "5m"
}
