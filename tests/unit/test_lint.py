"""The tree is ruff-clean (the same check a reviewer would run)."""

import subprocess
import sys
from pathlib import Path


def test_ruff_clean(root):
    done = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "."], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
