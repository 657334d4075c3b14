"""Per target: which catalog store to use and what to publish when a channel moves.

local — the SQLite catalog in KILN_HOME. aws — the shared S3 document when
``[aws] catalog_bucket`` is set (else the local SQLite file), and every channel
move is mirrored to the SSM parameters ``<ssm_prefix>/<image>/<channel>`` in
every configured region.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from pipeline import aws, config
from pipeline.catalog import LATEST, Catalog, Move
from pipeline.errors import ConfigError
from pipeline.settings import AwsSettings
from pipeline.settings import load as load_settings

TARGETS = ("local", "aws")


def check(target: str) -> str:
    """A known target, or ConfigError."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}", hint=f"targets: {', '.join(TARGETS)}")
    return target


def aws_settings(paths: config.Paths, cli: dict[str, Any] | None = None) -> AwsSettings:
    """Settings for the aws target (defaults < kiln.toml < environment < command line)."""
    return load_settings(paths.project, os.environ, cli)


def open_catalog(paths: config.Paths, target: str, *, create: bool = True,
                 settings: AwsSettings | None = None) -> Catalog:
    """The catalog store a target uses."""
    check(target)
    if target == "aws":
        settings = settings or aws_settings(paths)
        if settings.catalog_bucket:
            from pipeline.catalog.s3_store import S3Store

            account = aws.Account(settings)
            return Catalog(S3Store(account.client("s3"), settings.catalog_bucket, settings.catalog_key))
    return Catalog.open(paths.catalog, create=create)


def publish_moves(paths: config.Paths, target: str, catalog: Any, moves: Iterable[Move],
                  settings: AwsSettings | None = None) -> list[str]:
    """Mirror channel moves to SSM (aws target); returns one line per parameter written or removed."""
    if target != "aws":
        return []
    settings = settings or aws_settings(paths)
    account = aws.Account(settings)
    lines = []
    for move in moves:
        if move.to_version is None:
            aws.unpublish_channel(account, move.name, move.channel, settings.regions)
            lines.append(f"ssm: removed {aws.ssm_name(settings, move.name, move.channel)} (no good version left)")
            continue
        rec = catalog.get(move.name, move.to_version)
        amis = {a.region: a.id for a in rec.artifacts if a.target == "aws" and a.region in settings.regions}
        if amis:
            aws.publish_channel(account, move.name, move.channel, amis)
            lines.append(f"ssm: {aws.ssm_name(settings, move.name, move.channel)} → "
                         f"{', '.join(f'{r}:{a}' for r, a in sorted(amis.items()))}")
    return lines


__all__ = ["LATEST", "TARGETS", "aws_settings", "check", "open_catalog", "publish_moves"]
