"""Playbooks are ansible-lint clean and pass Ansible's syntax check."""

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def test_ansible_lint_clean(root):
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "playbooks/base.yml",
                           "playbooks/app.yml"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_syntax_check(root):
    done = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "playbooks/base.yml",
                           "playbooks/app.yml"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "ANSIBLE_CONFIG": str(root / "playbooks" / "ansible.cfg")})
    assert done.returncode == 0, done.stdout + done.stderr
