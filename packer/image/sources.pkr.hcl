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

source "amazon-ebs" "image" {
  region                     = var.aws_region
  source_ami                 = var.source_image
  instance_type              = var.aws_instance_type
  ami_name                   = "${var.image_name}-${var.image_version}"
  ami_description            = "Kiln image ${var.image_name} ${var.image_version}"
  ami_regions                = var.aws_ami_regions
  ami_users                  = var.aws_ami_users
  tags                       = var.aws_tags
  snapshot_tags              = var.aws_tags
  run_tags                   = var.aws_run_tags
  run_volume_tags            = var.aws_run_tags
  iam_instance_profile       = var.aws_iam_instance_profile
  encrypt_boot               = var.aws_kms_key_id != ""
  kms_key_id                 = var.aws_kms_key_id
  custom_endpoint_ec2        = var.aws_endpoint_ec2
  skip_region_validation     = var.aws_endpoint_ec2 != ""
  skip_metadata_api_check    = var.aws_endpoint_ec2 != ""
  ssh_keypair_name           = var.aws_ssh_keypair_name
  ssh_private_key_file       = var.ssh_private_key_file
  temporary_security_group_source_cidrs = var.aws_ssh_cidrs
  subnet_filter {
    filters   = var.aws_subnet_filter
    most_free = true
  }
  vpc_filter {
    filters = var.aws_vpc_filter
  }
  ssh_username  = var.ssh_username
  ssh_interface = var.aws_ssh_interface
  ssh_timeout   = "10m"
}

# Runs on an EC2 instance (the build host, as root): a volume made from the source AMI is
# attached there and provisioned in a chroot; no instance is launched per build. Nothing
# but a real EC2 host can run it (an API emulator has no volumes to attach).
source "amazon-chroot" "image" {
  region                 = var.aws_region
  source_ami             = var.source_image
  ami_name               = "${var.image_name}-${var.image_version}"
  ami_description        = "Kiln image ${var.image_name} ${var.image_version}"
  ami_regions            = var.aws_ami_regions
  ami_users              = var.aws_ami_users
  tags                   = var.aws_tags
  snapshot_tags          = var.aws_tags
  ena_support            = true
  sriov_support          = true
  custom_endpoint_ec2    = var.aws_endpoint_ec2
  skip_region_validation = var.aws_endpoint_ec2 != ""
  mount_path             = "/mnt/kiln-chroot/${var.run_id}"
}
