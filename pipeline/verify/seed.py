"""Per-boot access: a throwaway SSH key and a NoCloud seed that gives it to one user.

The image itself holds no user and no key. Every boot — Packer's build, the
verification, ``invoke up`` — gets its own key through cloud-init, the way an EC2
launch gets its key pair. The private half lives only in the run's scratch folder.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline import proc


@dataclass(frozen=True)
class Access:
    """A user, its private key, and the seed files that create it at boot."""

    user: str
    key: Path
    seed_files: tuple[Path, ...]

    @property
    def public_key(self) -> str:
        """The OpenSSH public key line."""
        return self.key.with_suffix(".pub").read_text().strip()


def user_data(user: str, public_key: str) -> str:
    """cloud-config that creates ``user`` with sudo and only ``public_key``."""
    doc = {
        "users": [{
            "name": user,
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
            "ssh_authorized_keys": [public_key],
        }],
        "ssh_pwauth": False,
    }
    # JSON is valid YAML; cloud-init wants the #cloud-config header.
    return "#cloud-config\n" + json.dumps(doc, indent=2) + "\n"


def make_access(folder: Path, user: str, instance_id: str, hostname: str) -> Access:
    """Generate a key and seed files in ``folder`` (which must be private to this run)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kiln-{instance_id}",
                    "-f", str(key)], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    seed = folder / "seed"
    seed.mkdir(exist_ok=True)
    (seed / "user-data").write_text(user_data(user, key.with_suffix(".pub").read_text().strip()))
    (seed / "meta-data").write_text(f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n")
    # Without vendor-data cloud-init retries for ~10 s.
    (seed / "vendor-data").write_text("#cloud-config\n{}\n")
    files = (seed / "user-data", seed / "meta-data", seed / "vendor-data")
    return Access(user=user, key=key, seed_files=files)


def iso_invocation(access: Access, iso: Path) -> proc.Invocation:
    """xorriso command that packs the seed files into a ``cidata`` ISO."""
    return proc.Invocation(("xorriso", "-as", "mkisofs", "-quiet", "-output", str(iso), "-volid", "cidata",
                            "-joliet", "-rock", *(str(f) for f in access.seed_files)))


def ssh_options(key: Path) -> list[str]:
    """SSH options for throwaway VMs: their host keys are new on every boot."""
    return ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10"]


def ssh_config(path: Path, access: Access, control_dir: Path) -> Path:
    """An ssh_config file for testinfra and humans; connections are shared through ``control_dir``."""
    path.write_text(
        "Host *\n"
        f"  User {access.user}\n"
        f"  IdentityFile {access.key}\n"
        "  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n"
        "  ControlMaster auto\n"
        f"  ControlPath {control_dir}/%C\n"
        "  ControlPersist 60s\n")
    return path
