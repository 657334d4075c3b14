"""The project configuration: which images exist, what each is built on, where things live.

Read once from ``kiln.toml`` and validated up front, so a bad config fails with
the file and key before anything is built. Settings follow one precedence:
defaults < kiln.toml < environment (KILN_*) < command line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import ROOT
from pipeline.errors import ConfigError

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
FOUNDATION = "foundation"
CONFIG_FILE = "kiln.toml"
IMAGE_KEYS = {"parent", "playbook", "specs", "forward", "description", "builder"}


@dataclass(frozen=True)
class ImageSpec:
    """One image as declared in kiln.toml."""

    name: str
    parent: str | None
    playbook: Path
    specs: Path
    forward: Mapping[str, int] = field(default_factory=dict)
    description: str = ""
    builder: str = ""  # how its layers are built (a builder of the target); empty: the target's default


@dataclass(frozen=True)
class Paths:
    """Where Kiln reads its project and keeps its state; the rest lives in ``home``."""

    project: Path
    home: Path
    cache: Path
    catalog_file: InitVar[Path | None] = None  # the SQLite catalog somewhere else than in home (KILN_CATALOG)
    catalog: Path = field(init=False)  # the SQLite catalog file
    store: Path = field(init=False)  # content-addressed image store (local target)
    logs: Path = field(init=False)  # one directory per bake run
    runs: Path = field(init=False)  # scratch space of running bakes (temporary disks, keys, seeds)
    locks: Path = field(init=False)  # one lock file per image, held while it bakes (``bake.locks``)

    def __post_init__(self, catalog_file: Path | None) -> None:
        for name, below in (("catalog", "catalog.db"), ("store", "images"), ("logs", "logs"), ("runs", "runs"),
                            ("locks", "locks")):
            object.__setattr__(self, name, self.home / below)
        if catalog_file is not None:
            object.__setattr__(self, "catalog", catalog_file)


def default_paths(env: Mapping[str, str] | None = None) -> Paths:
    """Paths from the environment: KILN_PROJECT, KILN_HOME, KILN_CACHE (XDG defaults), KILN_CATALOG.

    KILN_CATALOG points several homes (machines, Jenkins agents, test processes) at one SQLite catalog file:
    its bake leases then keep them from baking one image twice, as the S3 catalog does across machines."""
    env = os.environ if env is None else env
    project = Path(env.get("KILN_PROJECT") or ROOT)
    xdg_data = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local/share")
    xdg_cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = Path(env.get("KILN_HOME") or xdg_data / "kiln")
    cache = Path(env.get("KILN_CACHE") or xdg_cache / "kiln")
    catalog = Path(env["KILN_CATALOG"]).absolute() if env.get("KILN_CATALOG") else None
    return Paths(project=project.resolve(), home=home.absolute(), cache=cache.absolute(), catalog_file=catalog)


@dataclass(frozen=True)
class Project:
    """The validated image graph of a project."""

    root: Path
    images: Mapping[str, ImageSpec]

    def get(self, name: str) -> ImageSpec:
        """The image called ``name``, or a ConfigError listing the known ones."""
        try:
            return self.images[name]
        except KeyError:
            known = ", ".join(sorted(self.images)) or "none"
            raise ConfigError(f"unknown image {name!r}",
                              hint=f"images in {self.root / CONFIG_FILE}: {known}") from None

    def lineage(self, name: str) -> list[ImageSpec]:
        """``name`` and its ancestors, root first (the order to build them in)."""
        chain: list[ImageSpec] = []
        current: str | None = name
        while current is not None:
            spec = self.get(current)
            chain.append(spec)
            current = spec.parent
        return list(reversed(chain))

    def order(self, names: Iterable[str]) -> list[ImageSpec]:
        """``names`` and all their ancestors, parents before children, each once."""
        seen: dict[str, ImageSpec] = {}
        for name in names:
            for spec in self.lineage(name):
                seen.setdefault(spec.name, spec)
        return sorted(seen.values(), key=lambda s: (len(self.lineage(s.name)), s.name))

    def forwards(self, name: str) -> dict[str, int]:
        """Ports the image and its ancestors ask to reach from the host while it runs (label → guest port)."""
        found: dict[str, int] = {}
        for spec in self.lineage(name):
            found.update(spec.forward)
        return found

    def children(self, name: str) -> list[str]:
        """Images whose parent is ``name``."""
        return sorted(n for n, s in self.images.items() if s.parent == name)


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return 1


TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")


def toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """The line a TOML error is on, and its message without the position (Python 3.11 puts it in the text)."""
    message = str(exc)
    found = TOML_WHERE.search(message)
    line = getattr(exc, "lineno", None) or (int(found.group(1)) if found and found.group(1)
                                            else max(1, len(text.splitlines())))
    return line, TOML_WHERE.sub("", message)


def parse(path: Path, text: str) -> dict[str, Any]:
    """The TOML of ``path``; ConfigError with its line when it is broken (read before anything else uses it)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = toml_error(exc, text)
        raise ConfigError(f"{path}:{line}: invalid TOML: {message}",
                          hint="see https://toml.io for the syntax") from None


def load(root: Path) -> Project:
    """Read and validate ``root/kiln.toml``.

    Errors carry ``file:line`` and the key, and say how to fix it: unknown parents,
    cycles, bad names and missing playbooks or spec folders are caught here.
    """
    path = root / CONFIG_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found", hint="run Kiln from a project with a kiln.toml") from None
    data = parse(path, text)
    raw_images = data.get("images")
    if not isinstance(raw_images, dict) or not raw_images:
        raise ConfigError(f"{path}: no [images.<name>] tables", hint="declare at least one image")
    images = {name: image_spec(root, name, table, f"{path}:{_line_of(text, f'[images.{name}]')}")
              for name, table in raw_images.items()}
    check_lineage(images, path, text)
    return Project(root=root, images=images)


def image_spec(root: Path, name: str, table: object, where: str) -> ImageSpec:
    """One ``[images.<name>]`` table, checked; ``where`` is its ``file:line``."""
    if not NAME_RE.match(name) or name == FOUNDATION:
        raise ConfigError(f"{where}: invalid image name {name!r}",
                          hint="use lower-case letters, digits and dashes (not 'foundation')")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: images.{name} must be a table")
    unknown = set(table) - IMAGE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in [images.{name}]",
                          hint=f"allowed: {', '.join(sorted(IMAGE_KEYS))}")
    forward = table.get("forward", {})
    if not isinstance(forward, dict) or not all(
            isinstance(v, int) and 0 < v < 65536 and re.match(r"^[a-z][a-z0-9_]*$", k) for k, v in forward.items()):
        raise ConfigError(f"{where}: images.{name}.forward must map lower-case labels to ports",
                          hint='example: forward = { http = 80 }')
    playbook = inside(root, table.get("playbook", f"playbooks/{name}.yml"), f"images.{name}.playbook", where)
    specs = inside(root, table.get("specs", f"specs/{name}"), f"images.{name}.specs", where)
    if not playbook.is_file():
        raise ConfigError(f"{where}: playbook {playbook.relative_to(root)} for image {name!r} not found",
                          hint="create it or set 'playbook' in the image's table")
    if not specs.is_dir():
        raise ConfigError(f"{where}: spec folder {specs.relative_to(root)} for image {name!r} not found",
                          hint="create it with at least one test_*.py file")
    parent = table.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise ConfigError(f"{where}: images.{name}.parent must be a string")
    builder = table.get("builder", "")
    if not isinstance(builder, str) or (builder and not NAME_RE.match(builder)):
        raise ConfigError(f"{where}: images.{name}.builder must be a builder's name", hint='e.g. builder = "chroot"')
    return ImageSpec(name=name, parent=parent, playbook=playbook, specs=specs, forward=dict(forward),
                     description=str(table.get("description", "")), builder=builder)


def inside(root: Path, value: object, key: str, where: str) -> Path:
    """A path in the project, given relative to it: a string, and not leading out of it (the bake key and the
    gate only look inside the project)."""
    if not isinstance(value, str) or not value:
        example = "playbook = \"playbooks/NAME.yml\"" if key.endswith("playbook") else "specs = \"specs/NAME\""
        raise ConfigError(f"{where}: {key} must be a path in the project, as a string", hint=f"e.g. {example}")
    path = root / value
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{where}: {key} = {value!r} is outside the project ({root})",
                          hint="keep playbooks and specs in the project, e.g. playbooks/ and specs/")
    return path


def check_lineage(images: Mapping[str, ImageSpec], path: Path, text: str) -> None:
    """Every parent is declared, and no image is its own ancestor."""
    for spec in images.values():
        if spec.parent is not None and spec.parent not in images:
            where = f"{path}:{_line_of(text, f'[images.{spec.name}]')}"
            raise ConfigError(f"{where}: image {spec.name!r} has unknown parent {spec.parent!r}",
                              hint=f"declare [images.{spec.parent}] or remove 'parent' to build on the foundation")
    for spec in images.values():
        seen = [spec.name]
        current = spec.parent
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen[seen.index(current):], current])
                where = f"{path}:{_line_of(text, f'[images.{current}]')}"
                raise ConfigError(f"{where}: parent cycle {cycle}", hint="an image cannot be its own ancestor")
            seen.append(current)
            current = images[current].parent
