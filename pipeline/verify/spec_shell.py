"""testinfra's SSH backend with one root shell per spec session.

pytest loads it with ``-p pipeline.verify.spec_shell``; specs name it with ``--hosts=kiln-ssh://…``.

Specs run as root (testinfra's ``--sudo``), and testinfra's SSH backend wraps
every command in its own ``sudo``: under emulation that is 0.2 s of the 0.3 s
each assertion costs, and a layer's specs make about sixty such commands. This
backend starts one ``sudo python3`` loop in the guest over the shared SSH
connection and sends it each command, which it runs with ``/bin/sh -c`` as
``sudo /bin/sh -c`` would, with the same environment. A command testinfra runs
as another user (``host.sudo("user")``) or without sudo goes the ordinary way,
as does every command if the loop cannot start (no python3 in the image) or
stops (a spec that reboots the guest).
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from typing import Any

import testinfra.backend
from testinfra.backend import base
from testinfra.backend.ssh import SshBackend

SCHEME = "kiln-ssh"
READY = "kiln-spec-shell ready"
OUTER = "sudo /bin/sh -c "  # how testinfra's --sudo wraps each command (BaseBackend.get_sudo_command)
# Runs in the guest as root: one JSON line in (a command), one out ([rc, stdout, stderr], base64).
LOOP = f"""
import base64, json, subprocess, sys
print({READY!r}, flush=True)
for line in sys.stdin:
    p = subprocess.run(json.loads(line), shell=True, stdin=subprocess.DEVNULL, capture_output=True)
    out = [p.returncode, base64.b64encode(p.stdout).decode(), base64.b64encode(p.stderr).decode()]
    print(json.dumps(out), flush=True)
"""


class RootShellBackend(SshBackend):
    """SshBackend whose root commands go through one long-lived ``sudo python3`` in the guest."""

    NAME = SCHEME

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shell: subprocess.Popen[bytes] | None = None
        self._broken = False

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        full = self.get_command(command, *args)  # with any host.sudo() wrapping, then the session's own sudo
        if not self.sudo or not full.startswith(OUTER) or self._broken:
            return super().run(command, *args, **kwargs)
        reply = self._ask(shlex.split(full[len(OUTER):])[0])
        if reply is None:
            return super().run(command, *args, **kwargs)
        rc, out, err = reply
        return self.result(rc, self.encode(full), base64.b64decode(out), base64.b64decode(err))

    def _ask(self, line: str) -> list[Any] | None:
        """The loop's answer to one command; None (the ordinary path from now on) if the loop is gone.

        A loop that stops after it was sent the command may have run it: that is an error, as a
        connection lost mid-command is for testinfra's own SSH backend, never a second run."""
        shell = self._shell or self._start()
        if shell is None or shell.stdin is None or shell.stdout is None or shell.poll() is not None:
            return self._lost()
        try:
            shell.stdin.write(json.dumps(line).encode() + b"\n")
            shell.stdin.flush()
        except OSError:
            return self._lost()
        reply = shell.stdout.readline()
        if not reply:
            self._lost()
            raise RuntimeError(f"the guest's root shell stopped while it ran: {line}")
        return list(json.loads(reply))

    def _start(self) -> subprocess.Popen[bytes] | None:
        cmd, cmd_args = self._build_ssh_command(shlex.join(["sudo", "python3", "-c", LOOP]))
        shell = subprocess.Popen(self.quote(" ".join(cmd), *cmd_args), shell=True, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if shell.stdout is None or shell.stdout.readline().decode(errors="replace").strip() != READY:
            self._shell = shell
            self._lost()
            return None
        self._shell = shell
        return shell

    def _lost(self) -> None:
        self._broken = True
        if self._shell is not None:
            self._shell.kill()
            self._shell.wait()
        return None


testinfra.backend.BACKENDS.setdefault(SCHEME, f"{__name__}.RootShellBackend")
