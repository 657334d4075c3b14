"""What a bake leaves in its log folder for people and tools to read: JSON documents.

``inputs.json`` (the bake key's inputs), ``report.json`` (the gate's verdict),
``packages.json`` (the package manifest), ``timings.json`` (each step's seconds, and
those of verification's phases: boot, idempotence, specs).
"""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: Path, doc: object) -> Path:
    """Write a JSON document, indented, with a final newline."""
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
