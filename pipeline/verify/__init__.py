"""The verification gate and its tools: the guest it verifies on, per-boot access, Ansible's idempotence check,
the specs and their root shell."""
