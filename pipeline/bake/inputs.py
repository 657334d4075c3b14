"""The bake key: a digest of every input that can change an image.

Inputs are files (the Packer template set, the finaliser, the Ansible config,
the image's playbook and every role it uses, transitively) plus values (the
foundation recipe digest or the parent's artifact id, and the Packer and
ansible-core versions). The per-file digests are kept so a later plan can name
exactly which file changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ImageSpec
from pipeline.errors import ConfigError

# What a Packer build reads besides the playbook; other builders name theirs (``Builder.key_files``).
TEMPLATE_FILES = ("packer/image", "packer/finalize.sh", "packer/plugins.pkr.hcl", "playbooks/ansible.cfg")
SPEC_SHARED = ("specs/conftest.py", "specs/pytest.ini")


@dataclass(frozen=True)
class Inputs:
    """Files (path relative to the project → sha256) and values that make one bake."""

    files: Mapping[str, str]
    values: Mapping[str, str]

    @property
    def key(self) -> str:
        """The bake key: sha256 over the sorted files and values."""
        h = hashlib.sha256()
        for path, digest in sorted(self.files.items()):
            h.update(f"file {path} {digest}\n".encode())
        for name, value in sorted(self.values.items()):
            h.update(f"value {name} {value}\n".encode())
        return "sha256:" + h.hexdigest()

    def to_json(self) -> dict[str, Any]:
        """For the run's log folder and the catalog."""
        return {"key": self.key, "files": dict(sorted(self.files.items())), "values": dict(self.values)}

    def changed_since(self, old: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Files and values that differ from a recorded bake's inputs (its ``to_json()``)."""
        old_files = dict(old.get("files", {}) or {})
        old_values = dict(old.get("values", {}) or {})
        files = sorted(p for p in set(old_files) | set(self.files) if old_files.get(p) != self.files.get(p))
        values = sorted(k for k in set(old_values) | set(self.values) if old_values.get(k) != self.values.get(k))
        return files, values


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expand(root: Path, rel: str) -> Iterable[Path]:
    path = root / rel
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    elif path.is_file():
        yield path


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None


def _role_refs(node: Any) -> Iterable[str]:
    """Role names referenced anywhere in a play, task list or meta document."""
    if isinstance(node, list):
        for item in node:
            yield from _role_refs(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in ("roles", "dependencies") and isinstance(value, list):
                for entry in value:
                    name = entry.get("role") or entry.get("name") if isinstance(entry, dict) else entry
                    if isinstance(name, str):
                        yield name
            elif key.rsplit(".", 1)[-1] in ("include_role", "import_role") and isinstance(value, dict):
                if isinstance(value.get("name"), str):
                    yield value["name"]
            else:
                yield from _role_refs(value)


def playbook_files(root: Path, playbook: Path) -> list[Path]:
    """The playbook and every file of every role it uses, transitively."""
    roles_dir = root / "playbooks" / "roles"
    files = [playbook]
    pending = list(_role_refs(_load_yaml(playbook)))
    seen: set[str] = set()
    while pending:
        role = pending.pop()
        if role in seen:
            continue
        seen.add(role)
        folder = roles_dir / role
        if not folder.is_dir():
            raise ConfigError(f"{playbook}: role {role!r} not found in {roles_dir}",
                              hint="create the role folder or fix the name")
        role_files = sorted(p for p in folder.rglob("*") if p.is_file())
        files += role_files
        for f in role_files:
            if f.suffix in (".yml", ".yaml") and f.parent.name in ("tasks", "meta", "handlers"):
                pending += list(_role_refs(_load_yaml(f)))
    return files


def collect(root: Path, playbook: Path, values: Mapping[str, str],
            templates: Sequence[str] = TEMPLATE_FILES) -> Inputs:
    """The inputs of one image's bake: ``templates`` (the files its builder reads) and its playbook."""
    paths: list[Path] = []
    for rel in templates:
        paths += list(_expand(root, rel))
    paths += playbook_files(root, playbook)
    files = {str(p.relative_to(root)): file_digest(p) for p in paths}
    return Inputs(files=files, values=dict(values))


def spec_digest(root: Path, lineage: Sequence[ImageSpec]) -> str:
    """Digest of the specs an image is verified with (its own and its ancestors'): not a bake key input —
    a change re-verifies the image instead of rebaking it."""
    h = hashlib.sha256()
    paths: list[Path] = [root / p for p in SPEC_SHARED if (root / p).is_file()]
    for spec in lineage:
        paths += sorted(p for p in spec.specs.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in paths:
        h.update(f"{path.relative_to(root)} {file_digest(path)}\n".encode())
    return "sha256:" + h.hexdigest()
