"""The target registry: every place Kiln bakes for, by name.

``TARGETS`` maps a name to the class that implements ``targets.base.Target``
(imported only when used, so the local target never loads boto3). A new
target is one module and one entry here; tests register their own with
``register``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

from ansible.release import __version__ as ansible_core

from pipeline.config import ImageSpec, Paths
from pipeline.errors import ConfigError
from pipeline.targets.base import Builder, Leftover, Target

TARGETS: dict[str, str | Callable[..., Target]] = {
    "local": "pipeline.targets.local:LocalTarget",
    "aws": "pipeline.targets.aws:AwsTarget",
}

__all__ = ["TARGETS", "Builder", "Leftover", "Target", "builder", "builders_for", "check", "key_values", "open_target",
           "register", "target_class", "values_for"]


def register(name: str, factory: Callable[..., Target]) -> None:
    """Add a target: ``factory(paths, region=…)`` returns it."""
    TARGETS[name] = factory


def check(name: str) -> str:
    """A known target name, or ConfigError listing them."""
    if name not in TARGETS:
        raise ConfigError(f"unknown target {name!r}", hint=f"targets: {', '.join(TARGETS)}")
    return name


def target_class(name: str) -> Callable[..., Target]:
    """What makes the target called ``name`` (its class, imported on first use)."""
    factory = TARGETS[check(name)]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory


def open_target(name: str, paths: Paths, *, region: str = "") -> Target:
    """The target called ``name`` for this project and home (``region``: a command line's --region)."""
    return target_class(name)(paths, region=region)


def builder(target: Target, name: str = "") -> Builder:
    """The target's builder called ``name`` (its default when empty), or ConfigError listing them."""
    choices = list(target.builders)
    chosen = name or choices[0]
    if chosen not in target.builders:
        raise ConfigError(f"unknown builder {chosen!r} for target {target.name}",
                          hint=f"builders: {', '.join(choices)}")
    return target.builders[chosen](target)


def builders_for(target: Target, specs: Iterable[ImageSpec], chosen: str = "") -> dict[str, Builder]:
    """Each image's builder: ``chosen`` (the command line), else the image's own ``builder``, else the
    target's default; one instance per builder, its host tools checked once."""
    made: dict[str, Builder] = {}
    picked = {}
    for spec in specs:
        name = chosen or spec.builder or target.default_builder or next(iter(target.builders))
        if name not in made:
            made[name] = builder(target, name)
        picked[spec.name] = made[name]
    return picked


def values_for(target: Target, builders: Mapping[str, Builder]) -> dict[str, dict[str, str]]:
    """Each image's tool part of the bake key; each builder's host tools checked once."""
    once: dict[int, dict[str, str]] = {}
    for chosen in builders.values():
        if id(chosen) not in once:
            once[id(chosen)] = key_values(target, chosen)
    return {name: once[id(chosen)] for name, chosen in builders.items()}


def key_values(target: Target, builder: Builder) -> dict[str, str]:
    """The tool part of every bake key on ``target`` with ``builder``; checks the builder's host tools first."""
    return {**builder.tool_values(), "ansible-core": ansible_core, "target": target.name, "builder": builder.name}
