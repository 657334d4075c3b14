"""``invoke new NAME``: a new image's three files, ready for ``invoke validate`` and a first bake.

Like ``molecule init``, it writes what every image needs and nothing more: a
table appended to ``kiln.toml`` (the file is edited, never regenerated, so its
comments stay), a playbook with one commented example task, and a spec that
checks something real. Kiln stamps the image's identity itself, so none of
them has to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pipeline import config
from pipeline.errors import ConfigError

PLAYBOOK = """---
# {name}: built on {parent}. Add roles (playbooks/roles/) or tasks; Kiln stamps
# /etc/image-release itself and checks that a second run changes nothing.
- name: Bake the {name} image
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Nothing yet
      ansible.builtin.meta: noop
    # An example: install a package (and add a spec for it in specs/{name}/).
    # - name: Install htop
    #   ansible.builtin.apt:
    #     name: htop
    #     state: present
    #     update_cache: true
    #     cache_valid_time: 3600
"""

SPEC = '''"""What must be true of every {name} image; Kiln runs these (and its parents' specs) on a booted copy."""


def test_{ident}_says_which_image_it_is(host, expected):
    release = host.file("/etc/image-release")
    assert release.contains(f"^IMAGE_NAME={{expected.name}}$")
'''


def parse_forwards(text: str) -> dict[str, int]:
    """``http=80,metrics=9100`` → ports to reach from the host during verification."""
    found: dict[str, int] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        label, _, port = pair.partition("=")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", label) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--forward: invalid {pair!r}", hint="LABEL=PORT, e.g. http=80 (several: http=80,x=81)")
        found[label] = int(port)
    return found


def table(name: str, parent: str | None, forwards: Mapping[str, int]) -> str:
    """The ``[images.NAME]`` table appended to kiln.toml."""
    lines = ["", f"[images.{name}]", f'description = "{name} (scaffolded by invoke new; say what it is for)"']
    if parent:
        lines.insert(2, f'parent = "{parent}"')
    if forwards:
        lines.append("forward = { " + ", ".join(f"{k} = {v}" for k, v in forwards.items()) + " }")
    return "\n".join(lines) + "\n"


def new_image(root: Path, name: str, parent: str, forward: str = "") -> list[Path]:
    """Write the image's files under ``root``; refuse an existing or invalid name or an unknown parent."""
    project = config.load(root)
    if not config.NAME_RE.match(name) or name == config.FOUNDATION:
        raise ConfigError(f"invalid image name {name!r}", hint="use lower-case letters, digits and dashes "
                          "(at most 31), starting with a letter; not 'foundation'")
    if name in project.images:
        raise ConfigError(f"image {name!r} exists already in {root / config.CONFIG_FILE}",
                          hint="pick another name, or edit its table")
    on = None if parent in ("", config.FOUNDATION) else parent
    if on is not None and on not in project.images:
        raise ConfigError(f"unknown parent {parent!r}",
                          hint=f"images: {', '.join(sorted(project.images))} (or --parent foundation)")
    forwards = parse_forwards(forward)
    playbook, spec = root / "playbooks" / f"{name}.yml", root / "specs" / name / f"test_{name.replace('-', '_')}.py"
    for path in (playbook, spec.parent):
        if path.exists():
            raise ConfigError(f"{path} exists already", hint="move it away, or declare the image by hand")
    spec.parent.mkdir(parents=True)
    playbook.write_text(PLAYBOOK.format(name=name, parent=on or "the Debian foundation"))
    spec.write_text(SPEC.format(name=name, ident=name.replace("-", "_")))
    with open(root / config.CONFIG_FILE, "a") as fh:
        fh.write(table(name, on, forwards))
    return [root / config.CONFIG_FILE, playbook, spec]
