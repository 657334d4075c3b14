"""Kiln: bake layered, verified, versioned machine images and record them in a catalog."""

from pathlib import Path

__version__ = "0.1.0"

# Where Kiln's own files are: tasks.py (invoke looks for it in its working folder), the default project
# (kiln.toml, packer/, playbooks/, specs/), and the folder from which pytest imports Kiln's spec plugin.
ROOT = Path(__file__).resolve().parent.parent
