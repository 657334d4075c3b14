"""``invoke up`` / ``invoke down``: any local catalog image booted to poke at exactly what will be deployed."""

from __future__ import annotations

from pathlib import Path

from pipeline import config, versions
from pipeline.app.catalog import opened
from pipeline.catalog import LATEST
from pipeline.errors import ConfigError
from pipeline.targets.local import up


def boot(ref: str) -> tuple[str, up.Booted]:
    """Boot IMAGE[@VERSION] (default: the latest verified) detached; its reference and how to reach it."""
    paths = config.default_paths()
    name, version = versions.parse_ref(ref)
    project = config.load(paths.project)
    with opened() as (place, cat):
        version = version or cat.channel(name, LATEST)
        if version is None:
            raise ConfigError(f"{name} has no verified version", hint=f"invoke bake {name}")
        rec = cat.get(name, version)
    art = place.artifact_of(rec)
    if art is None or not art.path or not Path(art.path).exists():
        raise ConfigError(f"{rec.ref} has no local image file", hint=f"its status is {rec.status}")
    place.intact(rec)  # what boots is what was verified
    forwards = project.forwards(name) if name in project.images else {}
    return rec.ref, up.up(paths.home, name, rec.ref, Path(art.path), forwards)


def stop(name: str) -> bool:
    """Stop ``name``'s VM; False when it was not up."""
    return up.down(config.default_paths().home, name)
