"""What the catalog holds, as values: image versions, their artifacts, channel moves, who did what.

Frozen dataclasses with their export shape (``to_json``), shared by every
catalog store and by everything that reads the catalog.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline import versions
from pipeline.errors import ConfigError

STATUSES = ("building", "verified", "failed", "interrupted", "revoked", "deleted", "unverified")
LATEST = "latest"
CHANNEL_RE = r"^[a-z][a-z0-9-]{0,30}$"


@dataclass(frozen=True)
class Artifact:
    """Where a version lives on one target (a qcow2 locally, an AMI per region on AWS)."""

    target: str
    id: str
    region: str | None = None
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Export shape."""
        return {"target": self.target, "region": self.region, "id": self.id, "path": self.path}


@dataclass(frozen=True)
class ImageRecord:
    """One image version as the catalog knows it."""

    name: str
    version: str
    status: str
    parent: tuple[str, str] | None
    fingerprint: str
    git_commit: str
    git_dirty: bool
    created_at: str
    run_id: str
    log_dir: str
    report: str | None = None
    artifacts: tuple[Artifact, ...] = field(default_factory=tuple)
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def key(self) -> tuple[int, int, int, int]:
        """Sort key of the version."""
        return versions.parse(self.version)

    def artifact(self, target: str = "local", region: str | None = None) -> Artifact | None:
        """This version's artifact on ``target`` (and ``region``), if any."""
        for art in self.artifacts:
            if art.target == target and (region is None or art.region == region):
                return art
        return None

    def to_json(self) -> dict[str, Any]:
        """The export shape of one image version (without history and packages)."""
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "parent": {"name": self.parent[0], "version": self.parent[1]} if self.parent else None,
            "fingerprint": self.fingerprint,
            "git": {"commit": self.git_commit, "dirty": self.git_dirty},
            "created_at": self.created_at,
            "run_id": self.run_id,
            "log_dir": self.log_dir,
            "report": self.report,
            "artifacts": [a.to_json() for a in self.artifacts],
        }


@dataclass(frozen=True)
class ChannelEvent:
    """One move of a channel."""

    name: str
    channel: str
    at: str
    who: str
    action: str
    from_version: str | None
    to_version: str | None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Export shape."""
        return {"at": self.at, "who": self.who, "action": self.action, "from": self.from_version,
                "to": self.to_version, "reason": self.reason}


@dataclass(frozen=True)
class Move:
    """A channel that changed as a side effect (revoke, restore): for the user to read."""

    name: str
    channel: str
    from_version: str | None
    to_version: str | None

    def describe(self) -> str:
        """``channel prod of app: 2026.… → 2026.…``."""
        return (f"channel {self.channel} of {self.name}: {self.from_version or '(none)'} → "
                f"{self.to_version or '(none: no good version left)'}")


def now_iso() -> str:
    """UTC timestamp with a Z, second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    """Who is acting: ``KILN_ACTOR`` (Jenkins sets it to the build) or user@host."""
    explicit = os.environ.get("KILN_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def check_channel(channel: str) -> str:
    """A valid channel name, or ConfigError."""
    if not re.match(CHANNEL_RE, channel):
        raise ConfigError(f"invalid channel name {channel!r}",
                          hint="use lower-case letters, digits and dashes, e.g. prod or staging")
    return channel
