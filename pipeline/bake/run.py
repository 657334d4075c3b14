"""One ``invoke bake``: what its layers share — project, catalog, target and builders, git, run id, hooks.

The application layer (``pipeline.app``) builds it; the orchestrator
(``pipeline.bake.orchestrator``) and the steps only read it, except for the summary rows
each layer adds when it ends.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline.bake.layer import Git
from pipeline.bake.lease import Keeper
from pipeline.bake.plan import Planner
from pipeline.catalog import Catalog
from pipeline.progress import Reporter, Row
from pipeline.targets.base import Builder, Target

StepHook = Callable[[str, str, Reporter], None]  # (step, image, reporter), before each step


def new_run_id(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxx``: sortable and unique."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class Run:
    """Everything one bake shares across its layers."""

    paths: config.Paths
    project: config.Project
    catalog: Catalog
    reporter: Reporter
    target: Target
    builders: Mapping[str, Builder]  # each image's builder
    git: Git
    run_id: str
    tool_values: Mapping[str, Mapping[str, str]]  # each image's tool part of the bake key (target, builder, versions)
    verbose: bool = False
    hooks: tuple[StepHook, ...] = ()
    updates: Callable[[list[dict[str, str]]], list[Any]] | None = None  # pending-update check, when asked for
    rows: list[Row] = field(default_factory=list)
    leases: Keeper | None = None  # the catalog leases this run takes (None: a run that only reads)

    def planner(self) -> Planner:
        """The bake-key planner for this run's project, catalog, target and tools."""
        return Planner(self.project, self.catalog, self.target, lambda spec: self.tool_values[spec.name], self.updates,
                       lambda spec: self.builders[spec.name].key_files)

    @property
    def log_dir(self) -> Path:
        """This run's log folder."""
        return self.paths.logs / self.run_id
