"""``invoke validate``: every check that needs no VM, fast enough for every commit.

- the image config (kiln.toml) and the aws settings;
- every ``packer/image`` template file parses (python-hcl2), and ``packer
  validate`` accepts the template set for every target's source;
- every image's playbook passes ``ansible-playbook --syntax-check`` and
  ansible-lint, and every file it uses is valid YAML;
- every image's spec folders (its own and its ancestors') are collected by
  pytest without error.

Every finding names the file and line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import config, identity, packer, targets
from pipeline.bake import inputs
from pipeline.errors import ConfigError
from pipeline.packer import templates

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Finding:
    """One problem, where it is."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _rel(root: Path, path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return str(path)


def _from_config_error(root: Path, exc: ConfigError) -> Finding:
    match = re.match(r"^(/[^:\s]+):(\d+)(?::\d+)?:?\s*(.*)$", exc.message)
    if match:
        return Finding(_rel(root, match.group(1)), int(match.group(2)), match.group(3) + (
            f" ({exc.hint})" if exc.hint else ""))
    match = re.match(r"^(/[^:\s]+):\s*(.*)$", exc.message)
    if match:
        return Finding(_rel(root, match.group(1)), 1, match.group(2))
    return Finding("kiln.toml", 1, exc.message)


def check_config(root: Path) -> tuple[config.Project | None, list[Finding]]:
    """kiln.toml, and each target's settings in it (``[aws]``)."""
    findings = []
    project = None
    try:
        project = config.load(root)
    except ConfigError as exc:
        findings.append(_from_config_error(root, exc))
    for name in targets.TARGETS:
        try:
            targets.target_class(name).check_settings(root)
        except ConfigError as exc:
            findings.append(_from_config_error(root, exc))
    return project, findings


def check_templates(root: Path, *, work: Path | None = None, cache: Path | None = None) -> list[Finding]:
    """Each template file parses; ``packer validate`` accepts the set for each target.

    Packer runs in ``work`` with its cache in ``cache`` (by default a temporary folder for both).
    """
    template_dir = root / "packer" / "image"
    findings = []
    for path in sorted(template_dir.glob("*.pkr.hcl")):
        try:
            templates.parse_file(path)
        except ConfigError as exc:
            findings.append(_from_config_error(root, exc))
    if findings:
        return findings
    with tempfile.TemporaryDirectory(prefix="kiln-validate-") as tmp:
        key = Path(tmp) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                       capture_output=True, stdin=subprocess.DEVNULL)
        variables = {
            "image_name": "validate", "image_version": "2026.0101.000000", "source_image": str(Path(tmp) / "s.qcow2"),
            "output_dir": str(Path(tmp) / "out"), "manifest_path": str(Path(tmp) / "m.json"), "run_id": "validate",
            "playbook": str(root / "playbooks" / "base.yml"), "ssh_private_key_file": str(key),
            "finalize_script": str(root / "packer" / "finalize.sh"),
            "image_release": str(identity.write_release(Path(tmp) / "image-release", {"image_name": "validate"})),
            "ansible_command": str(BIN / "ansible-playbook"),
        }
        var_file = packer.write_var_file(Path(tmp) / "v.json", variables)
        for target, source in template_sources():
            inv = packer.validate_invocation(template_dir=template_dir, var_file=var_file, only=source,
                                             workdir=work or Path(tmp), cache=cache or Path(tmp) / "cache")
            done = subprocess.run(inv.argv, capture_output=True, text=True, env=inv.full_env(), cwd=inv.cwd,
                                  stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                findings += packer_findings(root, done.stdout + done.stderr, target)
    return findings


def template_sources() -> list[tuple[str, str]]:
    """(target, source) for every Packer source some target's builder uses."""
    return [(name, source) for name in targets.TARGETS
            for builder in targets.target_class(name).builders.values() for source in builder.template_sources]


def packer_findings(root: Path, output: str, target: str) -> list[Finding]:
    """Packer's ``Error: …`` blocks with their ``on FILE line N`` locations."""
    findings = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("Error"):
            continue
        title = line.split(":", 1)[-1].strip() or line
        file, number, detail = "packer/image", 1, ""
        for follow in lines[i + 1:i + 12]:
            where = re.search(r"on (\S+) line (\d+)", follow)
            if where:
                file, number = _rel(root, where.group(1)), int(where.group(2))
            elif follow.strip() and not follow.strip().startswith("(source code") and not detail \
                    and not follow.startswith("Error"):
                detail = follow.strip()
            if follow.startswith("Error") and follow is not line:
                break
        findings.append(Finding(file, number, f"packer validate ({target}): {title}" + (f" — {detail}" if detail
                                                                                          else "")))
    return findings or [Finding("packer/image", 1, f"packer validate ({target}) failed: {output.strip()[-300:]}")]


def check_playbooks(root: Path, project: config.Project) -> list[Finding]:
    """YAML of every file a playbook uses, Ansible's syntax check, ansible-lint."""
    findings: list[Finding] = []
    env = {**os.environ, "ANSIBLE_CONFIG": str(root / "playbooks" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    playbooks = sorted({spec.playbook for spec in project.images.values()})
    for playbook in playbooks:
        try:
            inputs.playbook_files(root, playbook)
        except ConfigError as exc:
            findings.append(_from_config_error(root, exc))
            continue
        done = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(playbook)],
                              capture_output=True, text=True, env=env, cwd=root, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            text = done.stdout + done.stderr
            where = re.search(r"Origin: (\S+?):(\d+)", text)
            first = next((ln.strip() for ln in text.splitlines() if "ERROR" in ln), "syntax check failed")
            findings.append(Finding(_rel(root, where.group(1)) if where else _rel(root, playbook),
                                    int(where.group(2)) if where else 1, first))
    if findings:
        return findings
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "-q", "-f", "pep8",
                           *(str(p) for p in playbooks)], capture_output=True, text=True, env=env, cwd=root,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        for line in done.stdout.splitlines():
            match = re.match(r"^(\S+?):(\d+)(?::\d+)?:\s*(.*)$", line)
            if match:
                findings.append(Finding(_rel(root, root / match.group(1)), int(match.group(2)),
                                        f"ansible-lint: {match.group(3)}"))
        if not findings:
            findings.append(Finding("playbooks", 1, f"ansible-lint failed: {(done.stdout + done.stderr)[-300:]}"))
    return findings


def check_specs(root: Path, project: config.Project) -> list[Finding]:
    """pytest collects every image's specs (its own and its ancestors') without error."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for name in sorted(project.images):
        dirs = [str(s.specs) for s in project.lineage(name)]
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "--hosts=local://", *dirs], capture_output=True, text=True, cwd=root,
                              stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        if done.returncode in (0, 5):
            continue
        for match in re.finditer(r"_+ ERROR collecting (\S+) _+\n(.*?)(?=\n_+ |\n=+ )", done.stdout, re.S):
            file = match.group(1)
            body = match.group(2)
            line = re.search(rf"{re.escape(Path(file).name)}:(\d+)", body)
            last = next((ln[2:].strip() for ln in reversed(body.splitlines()) if ln.startswith("E ")),
                        "cannot be collected")
            key = f"{file}:{last}"
            if key not in seen:
                seen.add(key)
                path = next((p for p in (root / file, root / "specs" / file) if p.exists()), root / file)
                findings.append(Finding(_rel(root, path), int(line.group(1)) if line else 1,
                                        f"spec does not load: {last}"))
        if not findings:
            findings.append(Finding(_rel(root, dirs[-1]), 1, f"pytest cannot collect the specs of {name}"))
    return findings


def run(root: Path, *, work: Path | None = None, cache: Path | None = None) -> list[Finding]:
    """Every check; the findings, in order (Packer runs in ``work``, its cache in ``cache``)."""
    project, findings = check_config(root)
    findings += check_templates(root, work=work, cache=cache)
    if project is not None:
        findings += check_playbooks(root, project)
        findings += check_specs(root, project)
    return findings
