"""The verification gate: idempotence (Molecule's check) then specs (testinfra).

Both run in one boot of a throwaway overlay. A playbook that changes anything on
its second run does not describe a stable image; specs check state and
behaviour. Only an image that passes both may be recorded ``verified``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import proc
from pipeline.vm import Guest


@dataclass(frozen=True)
class IdempotenceResult:
    """Outcome of the second playbook run."""

    ok: bool
    changed_tasks: tuple[str, ...]
    failed_tasks: tuple[str, ...]
    log: Path


@dataclass(frozen=True)
class SpecResult:
    """Outcome of the spec run, read back from its JUnit report."""

    ok: bool
    tests: int
    failures: tuple[str, ...]
    junit: Path
    log: Path


SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


@contextlib.contextmanager
def without_secrets() -> Iterator[None]:
    """Remove credentials from this process's environment for the duration of the block."""
    saved = {k: os.environ.pop(k) for k in SECRET_VARIABLES if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def ansible_env(project: Path) -> dict[str, str]:
    """Environment for every Ansible run Kiln starts (Packer's and the idempotence check)."""
    return {
        "ANSIBLE_CONFIG": str(project / "playbooks" / "ansible.cfg"),
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null"
                            " -o StrictHostKeyChecking=no -o IdentitiesOnly=yes",
        "ANSIBLE_NOCOLOR": "1",
    }


def task_label(event_data: Mapping[str, Any]) -> str:
    """``role : task`` as Ansible prints it."""
    role = event_data.get("role")
    task = str(event_data.get("task", "?"))
    return f"{role} : {task}" if role else task


def summarize_events(events: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Tasks that reported changed, and tasks that failed, from ansible-runner events."""
    changed: list[str] = []
    failed: list[str] = []
    for ev in events:
        data = ev.get("event_data") or {}
        if ev.get("event") == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            changed.append(task_label(data))
        elif ev.get("event") in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            failed.append(task_label(data))
    return changed, failed


def run_playbook(work: Path, playbook: Path, *, inventory: Mapping[str, Any], extravars: Mapping[str, Any],
                 envvars: Mapping[str, str], quiet: bool, ident: str) -> Any:
    """ansible-runner's run, made to stop like every other tool Kiln runs.

    ansible-runner writes its whole environment into artifacts/<ident>/command:
    secrets are kept out of it. A signal while it runs cancels the playbook and
    then stops the bake as anywhere else; a cancelled ansible-playbook that
    lives on in a session of its own (its command line names ``work``) is killed.
    """
    import ansible_runner

    with without_secrets(), proc.deferred_signals() as cancelled:
        try:
            return ansible_runner.run(
                private_data_dir=str(work), playbook=str(playbook), inventory=dict(inventory),
                extravars=dict(extravars), envvars=dict(envvars), quiet=quiet, ident=ident,
                cancel_callback=cancelled)
        finally:
            proc.kill_stray(f"{work}/inventory/")


def idempotence(guest: Guest, *, project: Path, playbook: Path, extravars: Mapping[str, Any],
                work: Path, stream: bool = False) -> IdempotenceResult:
    """Run ``playbook`` once more through ansible-runner; any changed task fails the check."""

    work.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {"hosts": {"guest": {
        "ansible_host": guest.host, "ansible_port": guest.ssh_port, "ansible_user": guest.access.user,
        "ansible_ssh_private_key_file": str(guest.access.key),
        "ansible_python_interpreter": "/usr/bin/python3"}}}}
    # ansible-runner finds ansible-playbook on the child's PATH: make it Kiln's own.
    envvars = {**ansible_env(project),
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    runner = run_playbook(work, playbook, inventory=inventory, extravars=extravars, envvars=envvars,
                          quiet=not stream, ident="idempotence")
    log = work / "idempotence.log"
    stdout = work / "artifacts" / "idempotence" / "stdout"
    log.write_text(stdout.read_text() if stdout.exists() else "")
    changed, failed = summarize_events(list(runner.events))
    ok = runner.status == "successful" and runner.rc == 0 and not changed and not failed
    if runner.status != "successful" and not failed:
        failed.append(f"ansible-runner status {runner.status} (rc {runner.rc})")
    return IdempotenceResult(ok=ok, changed_tasks=tuple(changed), failed_tasks=tuple(failed), log=log)


def spec_invocation(guest: Guest, *, spec_dirs: Sequence[Path], junit: Path,
                    env: Mapping[str, str]) -> proc.Invocation:
    """pytest-testinfra over SSH against the guest, one JUnit report."""
    return proc.Invocation(
        argv=(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--tb=short",
              f"--hosts=ssh://{guest.access.user}@{guest.host}:{guest.ssh_port}",
              f"--ssh-config={guest.ssh_config}", "--sudo", f"--junitxml={junit}",
              *(str(d) for d in spec_dirs)),
        env=dict(env),
    )


def spec_env(guest: Guest, identity: Mapping[str, str]) -> dict[str, str]:
    """What specs learn about the image and the VM (see specs/conftest.py)."""
    env = {f"KILN_{key.upper()}": value for key, value in identity.items()}
    env["KILN_SSH_PORT"] = str(guest.ssh_port)
    env["KILN_SSH_HOST"] = guest.host
    env["KILN_SSH_KEY"] = str(guest.access.key)
    env["KILN_SSH_USER"] = guest.access.user
    for label, port in guest.forwards.items():
        env[f"KILN_FORWARD_{label.upper()}"] = f"127.0.0.1:{port}"
    return env


def read_junit(junit: Path) -> tuple[int, list[str]]:
    """Number of tests and the ids of failing ones from a JUnit XML file."""
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return 0, ["(no JUnit report was written)"]
    tests = 0
    failures: list[str] = []
    for case in root.iter("testcase"):
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failures.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return tests, failures


def specs(guest: Guest, *, spec_dirs: Sequence[Path], identity: Mapping[str, str], work: Path,
          stream: bool = False) -> SpecResult:
    """Run the spec folders against the guest; the JUnit file is the source of truth."""
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    log = work / "specs.log"
    inv = spec_invocation(guest, spec_dirs=spec_dirs, junit=junit, env=spec_env(guest, identity))
    result = proc.run(inv, log, check=False, stream=stream)
    tests, failures = read_junit(junit)
    ok = result.returncode == 0 and tests > 0 and not failures
    if result.returncode != 0 and not failures:
        failures.append(f"pytest exited {result.returncode}")
    return SpecResult(ok=ok, tests=tests, failures=tuple(failures), junit=junit, log=log)


def package_manifest(guest: Guest) -> list[dict[str, str]]:
    """Every installed package (name, version, architecture) of the running guest."""
    out = subprocess.run(
        guest.ssh_argv("dpkg-query", "-W", "-f", "'${Package}\\t${Version}\\t${Architecture}\\n'"),
        check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    return [{"name": n, "version": v, "architecture": a} for n, v, a in rows]


def write_json(path: Path, doc: object) -> Path:
    """Write a JSON document (reports, manifests)."""
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
