"""AWS target settings, in one documented precedence: defaults < kiln.toml < environment < command line.

Validated once, up front, with errors that name where the bad value came from
(``kiln.toml:12 [aws] region``, ``KILN_AWS_REGION``, ``--region``). Credentials
are never settings: they come only from the standard AWS chain (environment,
profile, instance role) and are never written anywhere by Kiln.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.config import parse
from pipeline.errors import ConfigError

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
ORG_ARN_RE = re.compile(
    r"^arn:aws:organizations::\d{12}:(organization/o-[a-z0-9]{10,32}|ou/o-[a-z0-9]{10,32}/ou-[a-z0-9-]+)$")
TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")
DEBIAN_OWNER = "136693071363"
SSH_INTERFACES = ("public_ip", "private_ip")


@dataclass(frozen=True)
class AwsSettings:
    """Where and how AMIs are baked and published."""

    region: str = "us-east-1"
    copy_regions: tuple[str, ...] = ()
    share_accounts: tuple[str, ...] = ()
    share_org_arns: tuple[str, ...] = ()
    instance_type: str = "t3.micro"
    subnet_filter: Mapping[str, str] = field(default_factory=dict)
    vpc_filter: Mapping[str, str] = field(default_factory=dict)
    iam_instance_profile: str = ""
    kms_key_id: str = ""
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    source_ami_owners: tuple[str, ...] = (DEBIAN_OWNER,)
    source_ami_name: str = "debian-12-amd64-*"
    ssh_username: str = "admin"
    ssh_interface: str = "public_ip"  # or private_ip: this machine reaches instances inside their VPC
    catalog_bucket: str = ""
    catalog_key: str = "kiln/catalog.json"
    ssm_prefix: str = "/kiln/images"
    builder: str = ""  # how AMIs are built when the command line and the image do not say: packer, chroot

    @property
    def regions(self) -> tuple[str, ...]:
        """The build region first, then the copies."""
        return (self.region, *[r for r in self.copy_regions if r != self.region])


LISTS = {"copy_regions", "share_accounts", "share_org_arns", "source_ami_owners"}
MAPS = {"subnet_filter", "vpc_filter", "extra_tags"}
ENV = {f.name: f"KILN_AWS_{f.name.upper()}" for f in fields(AwsSettings)}


def _line(text: str, key: str) -> int:
    in_aws = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            in_aws = stripped == "[aws]"
        elif in_aws and stripped.split("=", 1)[0].strip() == key:
            return number
    return 1


def _coerce(name: str, value: Any, where: str) -> Any:
    if name in LISTS:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {name} must be a list of strings", hint='e.g. ["eu-west-1", "us-west-2"]')
        return tuple(value)
    if name in MAPS:
        if isinstance(value, str):
            pairs = [p for p in value.split(",") if p.strip()]
            if not all("=" in p for p in pairs):
                raise ConfigError(f"{where}: {name} must be KEY=VALUE pairs separated by commas",
                                  hint="e.g. tag:Name=kiln-build,tag:Team=web")
            value = dict(p.split("=", 1) for p in pairs)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in value.items()):
            raise ConfigError(f"{where}: {name} must map strings to strings", hint='e.g. { Team = "web" }')
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string")
    return value


def _check(settings: AwsSettings, origin: Mapping[str, str]) -> None:
    def fail(name: str, message: str, hint: str) -> None:
        raise ConfigError(f"{origin.get(name, 'default')}: {message}", hint=hint)

    for name in ("region", "copy_regions"):
        values = [settings.region] if name == "region" else list(settings.copy_regions)
        for region in values:
            if not REGION_RE.match(region):
                fail(name, f"invalid AWS region {region!r}", "regions look like eu-west-1 or us-east-1")
    for account in settings.share_accounts:
        if not ACCOUNT_RE.match(account):
            fail("share_accounts", f"invalid AWS account id {account!r} to share with",
                 "account ids are exactly 12 digits")
    for arn in settings.share_org_arns:
        if not ORG_ARN_RE.match(arn):
            fail("share_org_arns", f"invalid organisation ARN {arn!r}",
                 "e.g. arn:aws:organizations::123456789012:organization/o-abcdefghij")
    for owner in settings.source_ami_owners:
        if not (ACCOUNT_RE.match(owner) or owner in ("self", "amazon", "aws-marketplace")):
            fail("source_ami_owners", f"invalid AMI owner {owner!r}", "use a 12-digit account id or self/amazon")
    for key in settings.extra_tags:
        if not TAG_KEY_RE.match(key) or key.lower().startswith("aws:") or key.startswith("kiln:"):
            fail("extra_tags", f"invalid tag key {key!r}", "up to 128 letters, digits, spaces and _.:/=+-@; "
                 "not aws:* or kiln:* (Kiln's own)")
    if not re.match(r"^[a-z][a-z0-9]*[0-9]?[a-z]*\.[a-z0-9]+$", settings.instance_type):
        fail("instance_type", f"invalid instance type {settings.instance_type!r}", "e.g. t3.micro")
    if settings.builder and not re.match(r"^[a-z][a-z0-9-]{0,30}$", settings.builder):
        fail("builder", f"invalid builder name {settings.builder!r}", 'e.g. builder = "packer"')
    if settings.ssh_interface not in SSH_INTERFACES:
        fail("ssh_interface", f"invalid ssh_interface {settings.ssh_interface!r}",
             f"use {' or '.join(SSH_INTERFACES)} (private_ip when this machine is inside the VPC)")
    if not settings.ssm_prefix.startswith("/") or settings.ssm_prefix.endswith("/"):
        fail("ssm_prefix", f"invalid SSM prefix {settings.ssm_prefix!r}", "e.g. /kiln/images")
    if settings.catalog_bucket and not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", settings.catalog_bucket):
        fail("catalog_bucket", f"invalid S3 bucket name {settings.catalog_bucket!r}",
             "3-63 lower-case letters, digits, dots and dashes")


def load(project: Path, env: Mapping[str, str], cli: Mapping[str, Any] | None = None) -> AwsSettings:
    """Merge defaults, ``[aws]`` in kiln.toml, ``KILN_AWS_*`` variables and command-line values; validate."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    path = project / "kiln.toml"
    text = path.read_text() if path.exists() else ""
    table = parse(path, text).get("aws", {}) if text else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}:{_line(text, 'aws')}: aws must be a table ([aws])",
                          hint="write the aws settings under an [aws] header")
    known = {f.name for f in fields(AwsSettings)}
    for key, value in table.items():
        where = f"{path}:{_line(text, key)} [aws] {key}"
        if key not in known:
            raise ConfigError(f"{where}: unknown setting", hint=f"known: {', '.join(sorted(known))}")
        values[key] = _coerce(key, value, where)
        origin[key] = where
    if "region" not in values:
        for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if env.get(var):
                values["region"], origin["region"] = env[var], var
                break
    for key, var in ENV.items():
        if env.get(var):
            values[key] = _coerce(key, env[var], var)
            origin[key] = var
    for key, value in (cli or {}).items():
        if value not in (None, "", ()):
            flag = f"--{key.replace('_', '-')}"
            values[key] = _coerce(key, value, flag)
            origin[key] = flag
    settings = AwsSettings(**values)
    _check(settings, origin)
    return settings
