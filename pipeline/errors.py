"""Kiln's exception hierarchy.

Library code raises these and never prints or exits; the CLI edge (``tasks.py``)
turns them into one line that says what failed, where, and what to do.
"""

from __future__ import annotations


class KilnError(Exception):
    """An expected failure with a message fit for the user.

    ``hint`` says how to fix it; ``log`` points at the file with the details;
    ``exit_code`` is what the command exits with (1 unless a caller needs to tell it apart).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, log: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.log = log

    def oneline(self) -> str:
        """The single line the CLI prints."""
        parts = [self.message]
        if self.hint:
            parts.append(self.hint)
        if self.log:
            parts.append(f"log: {self.log}")
        return " — ".join(parts)


class ConfigError(KilnError):
    """The project configuration (kiln.toml, templates, playbooks, specs) is wrong."""


class ToolMissing(KilnError):
    """A host tool (packer, qemu, mmdebstrap, …) is absent or too old."""


class CommandFailed(KilnError):
    """An external command exited non-zero."""


class BuildFailed(KilnError):
    """Packer could not build an image."""


class VerificationFailed(KilnError):
    """An image did not pass its idempotence check or its specs."""


class IntegrityError(KilnError):
    """A stored file no longer has the content its artifact id names."""


class CatalogError(KilnError):
    """The catalog is unreadable, or a query found nothing."""


class CatalogMissing(CatalogError):
    """There is no catalog where one was expected (never read as an empty one)."""


class CloudError(KilnError):
    """A cloud API failed a call: unreachable, throttling, a server error, a refusal."""


def cloud_error(where: str, doing: str, exc: Exception, *, hint: str | None = None) -> CloudError:
    """One line for a failed AWS call (botocore's ``ClientError`` carries a code, its connection errors a
    message): ``s3://b/k: cannot write the catalog (ThrottlingException)``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = response.get("Error", {}).get("Code") or f"HTTP {status}"
    else:
        detail = str(exc) or type(exc).__name__
    return CloudError(f"{where}: {doing} ({detail})",
                      hint=hint or "check the network, the credentials and AWS_ENDPOINT_URL, then try again")


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so every ``finally`` runs (the CLI edge installs the handler)."""
