"""SSM derived from the catalog: every region's parameters put where the catalog's channels point.

Publishing and reconciling are one function. A publish after a channel move
writes not what the move said but what the catalog says *now* for the images
it names, then reads the catalog again: if it moved meanwhile (another bake's
``latest`` landing between this one's read and its write), it goes again, so
the value SSM is left with is the catalog's, never an older one. A region where
the channel's version has no AMI keeps its parameter (that version was never
stored there); a channel that points nowhere has no parameter in any region.

Before reading the catalog it reads the images' pending marks
(``pipeline.catalog.pending``) and, once every region agrees, clears those
marks: a publish that failed or never ran (the process was killed between the
catalog and SSM) is finished by the next one, or by ``invoke catalog.reconcile``.
Parameters under the prefix that the catalog knows nothing of are reported,
never removed: they are not Kiln's to judge.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from pipeline.catalog import Artifact, Catalog
from pipeline.errors import cloud_error
from pipeline.targets.aws import ssm
from pipeline.targets.aws.account import Account
from pipeline.targets.aws.settings import AwsSettings

ROUNDS = 3  # a catalog that keeps moving while it is published: each round starts from the newest


@dataclass(frozen=True)
class Difference:
    """One parameter in one region that is not what the catalog says (None: no parameter)."""

    region: str
    name: str
    have: str | None
    want: str | None


Pointed = dict[tuple[str, str], tuple[Artifact, ...] | None]  # ``Catalog.pointed``


def wanted(settings: AwsSettings, pointed: Pointed) -> dict[tuple[str, str], str | None]:
    """(region, parameter name) → the AMI the catalog's channels point at, None where there must be none."""
    want: dict[tuple[str, str], str | None] = {}
    for (image, channel), artifacts in pointed.items():
        name = ssm.ssm_name(settings, image, channel)
        if artifacts is None:
            want.update({(region, name): None for region in settings.regions})
            continue
        want.update({(a.region, name): a.id for a in artifacts if a.target == "aws" and a.region in settings.regions})
    return want


def existing(account: Account) -> dict[tuple[str, str], str]:
    """Every parameter under the prefix, in every region: (region, name) → value."""
    have = {}
    for region in account.settings.regions:
        client = account.client("ssm", region)
        try:
            for page in client.get_paginator("get_parameters_by_path").paginate(
                    Path=account.settings.ssm_prefix, Recursive=True):
                have.update({(region, p["Name"]): p["Value"] for p in page["Parameters"]})
        except Exception as exc:  # noqa: BLE001 — botocore's errors: one line naming the region
            raise cloud_error(region, "cannot read the SSM parameters", exc) from None
    return have


def differences(want: dict[tuple[str, str], str | None], have: dict[tuple[str, str], str]) -> list[Difference]:
    """What must change for ``have`` to say what ``want`` does, by parameter then region."""
    return [Difference(region, name, have.get((region, name)), value)
            for (region, name), value in sorted(want.items(), key=lambda kv: (kv[0][1], kv[0][0]))
            if have.get((region, name)) != value]


def unknown(settings: AwsSettings, pointed: Pointed, have: dict[tuple[str, str], str]) -> list[str]:
    """Parameters under the prefix naming an image or channel the catalog has never had: left as they are."""
    known = {ssm.ssm_name(settings, image, channel) for image, channel in pointed}
    return sorted({f"ssm: {name} is not a channel in the catalog: left as it is" for (_, name) in have
                   if name not in known})


def publish(account: Account, catalog: Catalog, images: Collection[str] | None = None, *,
            dry_run: bool = False) -> list[str]:
    """Put every region's parameters of ``images`` (None: every image) where the catalog says; one line per
    parameter changed (with ``dry_run``: would change), each with what it was."""
    lines: list[str] = []
    seen, pointed = catalog.pending(), catalog.pointed(images)  # the marks first: a move after them keeps its own
    for _ in range(ROUNDS):
        want, have = wanted(account.settings, pointed), existing(account)
        if images is None:
            lines += [u for u in unknown(account.settings, pointed, have) if u not in lines]
        diffs = differences(want, have)
        lines += described(diffs, dry_run)
        if dry_run:
            return lines
        apply(account, diffs)
        catalog.mirrored(seen if images is None else {n: t for n, t in seen.items() if n in images})
        seen, again = catalog.pending(), catalog.pointed(images)
        if again == pointed:
            return lines
        pointed = again
    return lines


def apply(account: Account, diffs: list[Difference]) -> None:
    """Every change lands in every region, or none does (``ssm.all_or_nothing``)."""
    with ssm.all_or_nothing(account) as changes:
        for d in diffs:
            if d.want is None:
                changes.delete(d.region, d.name, d.have)
            else:
                image, channel = d.name.rsplit("/", 2)[-2:]
                changes.put(d.region, d.name, d.want, f"Kiln: {image} on channel {channel}", d.have)


def described(diffs: list[Difference], dry_run: bool) -> list[str]:
    """A line per parameter: its new value in each region that changes, and what each region had."""
    lines = []
    for name in dict.fromkeys(d.name for d in diffs):
        mine = [d for d in diffs if d.name == name]
        was = ", ".join(f"{d.region}:{d.have or 'absent'}" for d in mine)
        if all(d.want is None for d in mine):
            lines.append(f"ssm: {'would remove' if dry_run else 'removed'} {name} (no good version left; was {was})")
        else:
            now = ", ".join(f"{d.region}:{d.want or 'absent'}" for d in mine)
            lines.append(f"ssm: {'would put ' if dry_run else ''}{name} → {now} (was {was})")
    return lines
