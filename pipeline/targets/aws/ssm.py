"""Channels as SSM parameters: ``<ssm_prefix>/<image>/<channel>`` in every region, changed all or nothing.

Deploy tooling reads these parameters, so they must never disagree with one
another: a set of changes either lands in every region, or what had moved is
put back (the previous value, or no parameter where there was none) and the
error goes on to the caller as one line (``CloudError``: throttling, a 5xx, a
refusal), with every region an undo could not put back and the value it is
left with. What the changes are is ``mirror``'s: the catalog's channels; the
catalog keeps the move marked pending until a later publish lands.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from pipeline.errors import KilnError, cloud_error
from pipeline.targets.aws.account import Account
from pipeline.targets.aws.settings import AwsSettings


def ssm_name(settings: AwsSettings, image: str, channel: str) -> str:
    """``/kiln/images/<name>/<channel>``."""
    return f"{settings.ssm_prefix}/{image}/{channel}"


class Changes:
    """Parameter changes made so far, with what each region held before, so they can be undone."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.before: list[tuple[str, str, str | None]] = []  # region, name, previous value (None: absent)

    def _previous(self, ssm: Any, name: str) -> str | None:
        try:
            return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ssm.exceptions.ParameterNotFound:
            return None

    def put(self, region: str, name: str, ami: str, description: str, was: str | None) -> None:
        """Point ``name`` at ``ami`` in ``region`` (DataType ``aws:ec2:image``); it held ``was`` (None: absent)."""
        self.before.append((region, name, was))
        self.account.client("ssm", region).put_parameter(Name=name, Value=ami, Type="String",
                                                         DataType="aws:ec2:image", Overwrite=True,
                                                         Description=description)

    def delete(self, region: str, name: str, was: str) -> None:
        """Remove ``name``, which held ``was``, in ``region`` (already gone: nothing to do)."""
        ssm = self.account.client("ssm", region)
        self.before.append((region, name, was))
        with contextlib.suppress(ssm.exceptions.ParameterNotFound):
            ssm.delete_parameter(Name=name)

    def undo(self) -> list[str]:
        """Put back every region's previous value, newest change first; what could not be put back, one line
        each with the value that region is left with (an undo that fails is never silent)."""
        failed = []
        for region, name, previous in reversed(self.before):
            ssm = self.account.client("ssm", region)
            try:
                if previous is None:
                    with contextlib.suppress(ssm.exceptions.ParameterNotFound):  # its put never landed
                        ssm.delete_parameter(Name=name)
                else:
                    ssm.put_parameter(Name=name, Value=previous, Type="String", DataType="aws:ec2:image",
                                      Overwrite=True)
            except Exception as exc:  # noqa: BLE001 — every region is tried; each failure is reported
                left, want = self._left(ssm, name), previous or "absent"
                if left != want:  # (a put that never landed needs no undo)
                    failed.append(f"{region} {name} left at {left} (should be {want}: "
                                  f"{cloud_error(region, 'undo', exc).message.split(': ', 1)[1]})")
        return failed

    def _left(self, ssm: Any, name: str) -> str:
        try:
            return self._previous(ssm, name) or "absent"
        except Exception:  # noqa: BLE001
            return "unknown (unreadable)"


@contextlib.contextmanager
def all_or_nothing(account: Account) -> Iterator[Changes]:
    """Changes made in the block land together, or are undone when it raises (an error, an interrupt); an AWS
    error becomes one line, and an undo that failed is added to it, region by region."""
    from botocore.exceptions import BotoCoreError, ClientError

    changes = Changes(account)
    try:
        yield changes
    except (ClientError, BotoCoreError) as exc:
        failed = changes.undo()
        error = cloud_error("ssm", "cannot publish the channels", exc)
        if failed:
            error.message += "; undo failed: " + "; ".join(failed)
        raise error from None
    except KilnError as exc:
        failed = changes.undo()
        if failed:
            exc.message += "; undo failed: " + "; ".join(failed)
        raise
    except BaseException:
        failed = changes.undo()
        if failed:
            sys.stderr.write("kiln: ssm: undo failed: " + "; ".join(failed) + "\n")
        raise

