"""``invoke up`` / ``invoke down``: boot any local catalog image to poke at exactly what will be deployed.

The VM runs detached (it outlives the command) on a throwaway overlay with its
own per-boot key, like a verification boot; its state lives in
``$KILN_HOME/up/<name>/``. While it runs, the image counts as in use for prune
(a running QEMU has it in its backing chain).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline import proc, vm
from pipeline.errors import KilnError
from pipeline.verify import seed

USER = "kiln"


@dataclass(frozen=True)
class Booted:
    """A running ``up`` VM."""

    name: str
    ref: str
    pid: int
    ssh_port: int
    key: str
    forwards: dict[str, tuple[int, int]]  # label -> (host port, guest port)

    def ssh_command(self) -> str:
        """What to type to get in."""
        return (f"ssh -i {self.key} -p {self.ssh_port} -o StrictHostKeyChecking=no "
                f"-o UserKnownHostsFile=/dev/null {USER}@127.0.0.1")


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def state_dir(home: Path, name: str) -> Path:
    """Where a booted image's overlay, key and state are."""
    return home / "up" / name


def read(home: Path, name: str) -> Booted | None:
    """The running VM of ``name``; a stale state (VM gone) is cleaned away."""
    folder = state_dir(home, name)
    path = folder / "state.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    booted = Booted(doc["name"], doc["ref"], doc["pid"], doc["ssh_port"], doc["key"],
                    {k: tuple(v) for k, v in doc["forwards"].items()})  # type: ignore[misc]
    if not alive(booted.pid):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return booted


def up(home: Path, name: str, ref: str, image: Path, forwards: dict[str, int], timeout: float | None = None
       ) -> Booted:
    """Boot ``image`` detached; return once SSH answers."""
    if read(home, name) is not None:
        raise KilnError(f"{name} is already up", hint=f"invoke down {name} first")
    folder = state_dir(home, name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    try:
        access = seed.make_access(folder / "access", USER, f"up-{name}-{int(time.time())}", name)
        iso = folder / "seed.iso"
        log = folder / "qemu.log"
        proc.run(seed.iso_invocation(access, iso), log, what="xorriso")
        overlay = folder / "overlay.qcow2"
        proc.run(vm.overlay_invocation(image, overlay), log, what="qemu-img create")
        ssh_port = vm.free_port()
        ports = {label: (vm.free_port(), guest) for label, guest in forwards.items()}
        inv = vm.qemu_invocation(disk=overlay, seed_iso=iso, ssh_port=ssh_port,
                                 forwards={host: guest for host, guest in ports.values()},
                                 serial_log=folder / "serial.log", pidfile=folder / "qemu.pid",
                                 accel=vm.accelerator())
        with open(log, "ab") as out:
            subprocess.Popen([*inv.argv, "-daemonize"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             start_new_session=True).wait(timeout=60)
        pid = int((folder / "qemu.pid").read_text().strip())
        booted = Booted(name, ref, pid, ssh_port, str(access.key), ports)
        (folder / "state.json").write_text(json.dumps(
            {"name": name, "ref": ref, "pid": pid, "ssh_port": ssh_port, "key": str(access.key),
             "forwards": {k: list(v) for k, v in ports.items()}}, indent=2))
        deadline = time.monotonic() + (timeout or vm.boot_seconds())
        argv = ["ssh", *seed.ssh_options(access.key), "-p", str(ssh_port), f"{USER}@127.0.0.1", "true"]
        while subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60).returncode != 0:
            if not alive(pid) or time.monotonic() > deadline:
                raise KilnError(f"{ref} did not come up ({vm.BOOT_ENV})", log=folder / "serial.log",
                                hint=f"see its serial log; {vm.BOOT_ENV} sets how long a boot may take")
            time.sleep(2)
        return booted
    except BaseException:
        down(home, name)
        raise


def down(home: Path, name: str) -> bool:
    """Stop ``name``'s VM and remove its overlay; False when it was not up."""
    folder = state_dir(home, name)
    pidfile = folder / "qemu.pid"
    was_up = False
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid and alive(pid):
            was_up = True
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not alive(pid):
                    break
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)
    return was_up
