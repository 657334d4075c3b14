"""An emulated AWS account with the EC2 twin, for the harnesses that bake on it (fault suite, bench).

A moto server on 127.0.0.1, the twin's loopback VPC, an S3 bucket for the
catalog, and the twin itself (its instances are real local VMs booted from the
foundation). The process environment points boto3 and every bake at it while
the account lives, and is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3

from pipeline import ROOT
from tools.aws import emulator
from tools.aws.twin import Twin


@contextlib.contextmanager
def twin_account(work: Path, cache: Path, bucket: str,
                 extra: Mapping[str, str] | None = None) -> Iterator[tuple[dict[str, str], Twin]]:
    """The account and the environment Kiln's bakes run with there (``KILN_AWS_CATALOG_BUCKET`` = ``bucket``)."""
    from pipeline.targets.local import foundation

    with emulator.server() as url:
        env = {**emulator.environment(url), **emulator.TWIN_SETTINGS, "KILN_AWS_CATALOG_BUCKET": bucket,
               **(extra or {})}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            emulator.twin_network()
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket)
            disk = foundation.ensure(foundation.Recipe.load(ROOT / "packer" / "foundation"), cache,
                                     work / "foundation.log")
            with Twin(url, ["us-east-1"], disk, emulator.seeded_amis(), work / "twin", logs=work / "twin-logs") as twin:
                yield env, twin
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
