"""What the specs know about the image under test, from Kiln's environment.

Kiln boots a throwaway copy of the image and runs ``pytest --hosts=ssh://…``
against it with these variables set:

- ``KILN_IMAGE_NAME`` / ``KILN_IMAGE_VERSION`` / ``KILN_IMAGE_PARENT`` — expected identity (with
  ``KILN_GIT_COMMIT``, ``KILN_GIT_DIRTY`` and ``KILN_BAKE_KEY``, as Kiln stamps it in /etc/image-release);
- ``KILN_SSH_HOST`` / ``KILN_SSH_PORT`` / ``KILN_SSH_USER`` / ``KILN_SSH_KEY`` — how the VM is reached;
- ``KILN_FORWARD_<LABEL>`` — ``127.0.0.1:PORT`` for each port in kiln.toml's ``forward``;
- ``KILN_BUILD_PUBLIC_KEY`` — the public half of the key Packer's build used (it must be gone);
- ``KILN_BUILDER`` — how the image was built: ``packer`` (a VM reached with that key) or ``chroot``
  (provisioned in a chroot: there never was a build key, so there is none to look for).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Expected:
    """The identity the image must report."""

    name: str
    version: str
    parent: str


@pytest.fixture(scope="session")
def expected() -> Expected:
    """The image Kiln says it booted."""
    try:
        return Expected(os.environ["KILN_IMAGE_NAME"], os.environ["KILN_IMAGE_VERSION"],
                        os.environ.get("KILN_IMAGE_PARENT", ""))
    except KeyError as exc:
        pytest.fail(f"{exc.args[0]} is not set: specs are run by Kiln against a booted image")


@pytest.fixture(scope="session")
def forwarded():
    """``forwarded("http")`` → ``"127.0.0.1:PORT"`` reaching that guest port from the host."""

    def lookup(label: str) -> str:
        key = f"KILN_FORWARD_{label.upper()}"
        if key not in os.environ:
            pytest.fail(f"{key} is not set: declare forward = {{ {label} = PORT }} in kiln.toml")
        return os.environ[key]

    return lookup


@pytest.fixture(scope="session")
def ssh_endpoint() -> tuple[str, int, str]:
    """(host, port, user) of the VM's SSH server, for behaviour tests from the host."""
    return (os.environ.get("KILN_SSH_HOST", "127.0.0.1"), int(os.environ["KILN_SSH_PORT"]),
            os.environ.get("KILN_SSH_USER", "kiln"))


@pytest.fixture(scope="session")
def build_public_key() -> str:
    """The build's public key, which must appear nowhere in the image."""
    key = os.environ.get("KILN_BUILD_PUBLIC_KEY", "")
    if not key and os.environ.get("KILN_BUILDER") == "chroot":
        return ""
    if len(key.split()) < 2:
        pytest.fail("KILN_BUILD_PUBLIC_KEY is not set: specs are run by Kiln after a build")
    return key
