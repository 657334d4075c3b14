# Inputs of one layer bake. The pipeline passes every one of them (-var-file),
# so a template change that adds a variable without a default fails loudly.

variable "image_name" {
  type        = string
  description = "Name of the image being baked (a key of kiln.toml's [images]; Kiln checks its form)."
}

variable "image_version" {
  type        = string
  description = "Version of this bake (YYYY.MMDD.HHMMSS[.N], UTC)."
}

variable "source_image" {
  type        = string
  description = "What the layer starts from: a qcow2 path locally, an AMI id on AWS."
}

variable "use_backing_file" {
  type        = bool
  description = "Store only the delta on top of source_image (layers above the first)."
  default     = false
}

variable "output_dir" {
  type        = string
  description = "Directory Packer creates for the image; must not exist yet."
}

variable "manifest_path" {
  type        = string
  description = "Where the manifest post-processor writes the build's artifact record."
}

variable "run_id" {
  type        = string
  description = "Identifier of the bake run, recorded in the manifest."
}

variable "playbook" {
  type        = string
  description = "Absolute path of the layer's Ansible playbook."
}

variable "ansible_command" {
  type        = string
  description = "ansible-playbook to run (the one from Kiln's virtualenv)."
  default     = "ansible-playbook"
}

variable "ansible_env_vars" {
  type        = list(string)
  description = "KEY=VALUE pairs for Ansible (config file, SSH options)."
  default     = []
}

variable "ansible_extra_vars" {
  type        = string
  description = "JSON object of extra vars for the playbook (image identity)."
  default     = "{}"
}

variable "ssh_username" {
  type        = string
  description = "Temporary build user created from the seed; removed by finalisation."
  default     = "packer"
}

variable "ssh_private_key_file" {
  type        = string
  description = "Private half of the per-build key (deleted after the build); amazon-chroot uses none."
  default     = ""
}

variable "finalize_script" {
  type        = string
  description = "Script run as the shutdown command: removes the build user, keys and state."
}

variable "image_release" {
  type        = string
  description = "The image's identity file, written by Kiln; installed as /etc/image-release with the finaliser."
}

variable "seed_files" {
  type        = list(string)
  description = "NoCloud seed files (user-data, meta-data, vendor-data) for the build boot."
  default     = []
}

variable "accelerator" {
  type        = string
  description = "QEMU accelerator: kvm where it works, tcg otherwise."
  default     = "tcg"
  validation {
    condition     = contains(["kvm", "tcg"], var.accelerator)
    error_message = "The accelerator must be kvm or tcg."
  }
}

variable "memory" {
  type    = number
  default = 1024
}

variable "cpus" {
  type    = number
  default = 2
}

variable "disk_size" {
  type        = string
  description = "Virtual disk size; equal to the foundation's so nothing is resized."
  default     = "4096M"
}

variable "serial_log" {
  type        = string
  description = "File that receives the build VM's serial console."
  default     = "/dev/null"
}

# -- amazon-ebs (target aws) -------------------------------------------------------

variable "aws_region" {
  type        = string
  description = "Region the AMI is built in."
  default     = "us-east-1"
}

variable "aws_ami_regions" {
  type        = list(string)
  description = "Regions the AMI is copied to (tags are applied there too)."
  default     = []
}

variable "aws_ami_users" {
  type        = list(string)
  description = "Account ids the AMI is shared with."
  default     = []
}

variable "aws_instance_type" {
  type    = string
  default = "t3.micro"
}

variable "aws_subnet_filter" {
  type        = map(string)
  description = "EC2 filters choosing the build subnet (empty: the default VPC)."
  default     = {}
}

variable "aws_vpc_filter" {
  type        = map(string)
  description = "EC2 filters choosing the build VPC."
  default     = {}
}

variable "aws_iam_instance_profile" {
  type    = string
  default = ""
}

variable "aws_kms_key_id" {
  type        = string
  description = "KMS key for the AMI's snapshots; empty: not encrypted by Kiln."
  default     = ""
}

variable "aws_tags" {
  type        = map(string)
  description = "Provenance tags for the AMI and its snapshots, in every region."
  default     = {}
}

variable "aws_run_tags" {
  type        = map(string)
  description = "Tags for the build instance and its volumes (the janitor finds them by kiln:run-id)."
  default     = {}
}

variable "aws_endpoint_ec2" {
  type        = string
  description = "EC2 endpoint override (AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL), e.g. an emulator."
  default     = ""
}

variable "aws_ssh_cidrs" {
  type        = list(string)
  description = "Who may reach the build instance's SSH port."
  default     = []
}

variable "aws_ssh_interface" {
  type        = string
  description = "How the build instance is reached: public_ip, or private_ip from inside its VPC."
  default     = "public_ip"

  validation {
    condition     = contains(["public_ip", "private_ip"], var.aws_ssh_interface)
    error_message = "The aws_ssh_interface value must be public_ip or private_ip."
  }
}

variable "aws_ssh_keypair_name" {
  type        = string
  description = "EC2 key pair holding the public half of ssh_private_key_file (Kiln imports it per build)."
  default     = ""
}

variable "chroot_inventory" {
  type        = string
  description = "amazon-chroot: an Ansible inventory naming the chroot (mount_path) with the chroot connection."
  default     = "/dev/null"
}
