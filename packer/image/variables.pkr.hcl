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
  description = "Private half of the per-build key (deleted after the build)."
}

variable "finalize_script" {
  type        = string
  description = "Script run as the shutdown command: removes the build user, keys and state."
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
