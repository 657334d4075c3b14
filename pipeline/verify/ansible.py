"""Ansible through ansible-runner: the environment every run gets, and the idempotence check.

A playbook that changes anything on its second run does not describe a stable
image (Molecule's check); the gate runs it against the guest and names every
task that changed or failed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import machine, proc
from pipeline.errors import CommandFailed
from pipeline.verify.guest import Guest


@dataclass(frozen=True)
class IdempotenceResult:
    """Outcome of the second playbook run."""

    ok: bool
    changed_tasks: tuple[str, ...]
    failed_tasks: tuple[str, ...]
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
    A playbook still running after ``KILN_TOOL_SECONDS`` is stopped: CommandFailed.
    An earlier run's artifacts under the same ``ident`` are cleared first: its
    events would otherwise be read back with this run's.
    """
    import ansible_runner

    shutil.rmtree(work / "artifacts" / ident, ignore_errors=True)
    limit = max(1, int(proc.tool_seconds()))
    with without_secrets(), proc.deferred_signals() as cancelled:
        try:
            runner = ansible_runner.run(
                private_data_dir=str(work), playbook=str(playbook), inventory=dict(inventory),
                extravars=dict(extravars), envvars=dict(envvars), quiet=quiet, ident=ident,
                cancel_callback=cancelled, timeout=limit)
        finally:
            machine.kill_stray(f"{work}/inventory/")
    if runner.status == "timeout":  # Kiln's world, not a verdict on the image: an error, not a changed task
        raise CommandFailed(f"ansible-playbook {playbook.name} did not finish within {limit} s ({proc.TOOL_ENV}): "
                            "stopped", log=work / "artifacts" / ident / "stdout",
                            hint=f"a guest that stopped answering? {proc.TOOL_ENV} sets how long one tool may run")
    return runner


def idempotence(guest: Guest, *, project: Path, playbook: Path, extravars: Mapping[str, Any],
                work: Path, stream: bool = False) -> IdempotenceResult:
    """Run ``playbook`` once more through ansible-runner; any changed task fails the check."""
    work.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {"hosts": {"guest": guest.ansible_host()}}}
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
