"""A running machine of the image under test, as the gate reaches it.

The gate (``pipeline.verify.gate``) needs four things of a guest, whatever it is — a
throwaway QEMU VM, an EC2 test instance, or any other target's machine: how
Ansible reaches it, how testinfra reaches it, what the specs are told about it,
and how to run one command in it. ``SshGuest`` is the guest every target has
today: SSH with a per-boot key, ports reached from this machine (QEMU port
forwards or SSH tunnels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.verify import seed


class Guest(Protocol):
    """What the gate needs of a machine under test."""

    def ansible_host(self) -> dict[str, Any]:
        """Inventory variables of the one host Ansible's idempotence run targets."""
        ...

    def testinfra_args(self) -> tuple[str, ...]:
        """pytest-testinfra's connection arguments (``--hosts=…``)."""
        ...

    def environment(self) -> dict[str, str]:
        """What the specs learn about the machine (``KILN_SSH_*``, ``KILN_FORWARD_<LABEL>``)."""
        ...

    def command(self, *argv: str) -> list[str]:
        """The argv that runs ``argv`` in the guest from this machine."""
        ...


@dataclass(frozen=True)
class Unreachable:
    """A guest that is not a machine (an AWS API emulator's instance): there is nothing to check on it."""

    reason: str
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SshGuest:
    """A guest reached over SSH at ``host:ssh_port`` with a per-boot key; ``forwards``: label → local port."""

    ssh_port: int
    access: seed.Access
    ssh_config: Path
    forwards: Mapping[str, int] = field(default_factory=dict)
    pid: int = 0
    host: str = "127.0.0.1"
    control_dir: Path | None = None

    def ssh_argv(self, *command: str) -> list[str]:
        """argv of an ssh command into the guest."""
        return ["ssh", *seed.ssh_options(self.access.key), "-p", str(self.ssh_port),
                f"{self.access.user}@{self.host}", *command]

    def ansible_host(self) -> dict[str, Any]:
        """Ansible over SSH with the per-boot key."""
        host = {"ansible_host": self.host, "ansible_port": self.ssh_port, "ansible_user": self.access.user,
                "ansible_ssh_private_key_file": str(self.access.key), "ansible_python_interpreter": "/usr/bin/python3"}
        if self.control_dir:
            # Ansible's control masters outlive it by ControlPersist: keep them where the boot closes them.
            host["ansible_control_path_dir"] = str(self.control_dir)
        return host

    def testinfra_args(self) -> tuple[str, ...]:
        """testinfra's SSH backend, sharing connections through the ssh_config's control master, its root
        commands through one root shell (``pipeline/verify/spec_shell.py``)."""
        return ("-p", "pipeline.verify.spec_shell", f"--hosts=kiln-ssh://{self.access.user}@{self.host}:{self.ssh_port}",
                f"--ssh-config={self.ssh_config}", "--sudo")

    def environment(self) -> dict[str, str]:
        """How the specs reach the guest themselves, and the forwarded ports."""
        env = {"KILN_SSH_PORT": str(self.ssh_port), "KILN_SSH_HOST": self.host, "KILN_SSH_KEY": str(self.access.key),
               "KILN_SSH_USER": self.access.user}
        env.update({f"KILN_FORWARD_{label.upper()}": f"127.0.0.1:{port}" for label, port in self.forwards.items()})
        return env

    def command(self, *argv: str) -> list[str]:
        """ssh into the guest."""
        return self.ssh_argv(*argv)
