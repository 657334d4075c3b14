"""Boot a throwaway copy of an image under QEMU and reach it over SSH.

The image is never written: the VM runs on a qcow2 overlay whose backing file is
the image, in a scratch folder removed on exit. Ports (SSH and any declared in
kiln.toml) are forwarded to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pipeline import proc
from pipeline.errors import KilnError
from pipeline.verify import seed
from pipeline.verify.guest import SshGuest

BOOT_TIMEOUT = 600.0  # a verification boot under TCG answers in one to two minutes
BOOT_ENV = "KILN_BOOT_SECONDS"


def boot_seconds(env: Mapping[str, str] | None = None) -> float:
    """How long a machine may take to answer on SSH with cloud-init done: ``KILN_BOOT_SECONDS``, else 600 s."""
    return float((os.environ if env is None else env).get(BOOT_ENV) or BOOT_TIMEOUT)


def accelerator() -> str:
    """``kvm`` when /dev/kvm really works, else ``tcg``; ``KILN_ACCEL`` overrides.

    On some hosts /dev/kvm exists but hangs, so existence is not enough: the
    default is tcg unless KILN_ACCEL=kvm is set.
    """
    return os.environ.get("KILN_ACCEL", "tcg")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_invocation(*, disk: Path, seed_iso: Path, ssh_port: int, forwards: Mapping[int, int],
                    serial_log: Path, pidfile: Path, memory: int = 1024, cpus: int = 2,
                    accel: str = "tcg") -> proc.Invocation:
    """The qemu-system command for a verification boot (``forwards``: host port → guest port)."""
    hostfwd = [f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22"]
    hostfwd += [f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in sorted(forwards.items())]
    return proc.Invocation(argv=(
        "qemu-system-x86_64", "-accel", accel, "-m", str(memory), "-smp", str(cpus),
        "-nodefaults", "-vga", "none", "-display", "none", "-monitor", "none", "-serial", f"file:{serial_log}",
        "-drive", f"file={disk},if=virtio,format=qcow2",
        "-drive", f"file={seed_iso},media=cdrom,readonly=on",
        "-netdev", "user,id=n0," + ",".join(hostfwd),
        "-device", "virtio-net-pci,netdev=n0",
        "-pidfile", str(pidfile),
    ))


def overlay_invocation(image: Path, overlay: Path) -> proc.Invocation:
    """qemu-img command for a throwaway overlay on ``image``."""
    return proc.Invocation(("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image),
                            str(overlay)))


@contextlib.contextmanager
def boot(image: Path, scratch: Path, log_dir: Path, *, forwards: Mapping[str, int] | None = None, user: str = "kiln",
         name: str = "verify", timeout: float | None = None, run_id: str = "") -> Iterator[SshGuest]:
    """Boot ``image`` on an overlay in ``scratch``; yield once SSH and cloud-init are ready.

    On exit — success, failure or interrupt — QEMU is killed and ``scratch`` removed. A VM that has not
    answered after ``timeout`` (default ``boot_seconds()``) is an error, never a verdict on the image.
    """
    scratch.mkdir(parents=True, exist_ok=False, mode=0o700)
    # SSH control sockets need a short path (108 bytes at most): not under scratch.
    control = control_dir(run_id)
    try:
        access = seed.make_access(scratch / "access", user, f"{name}-{scratch.name}", name)
        iso = scratch / "seed.iso"
        proc.run(seed.iso_invocation(access, iso), log_dir / f"{name}-qemu.log", what="xorriso")
        overlay = scratch / "overlay.qcow2"
        proc.run(overlay_invocation(image, overlay), log_dir / f"{name}-qemu.log", what="qemu-img create")
        ssh_port = free_port()
        host_ports = {label: free_port() for label in (forwards or {})}
        inv = qemu_invocation(disk=overlay, seed_iso=iso, ssh_port=ssh_port,
                              forwards={host_ports[lbl]: guest for lbl, guest in (forwards or {}).items()},
                              serial_log=log_dir / f"{name}-serial.log", pidfile=scratch / "qemu.pid",
                              accel=accelerator())
        with proc.background(inv, log_dir / f"{name}-qemu.log") as vm:
            guest = SshGuest(ssh_port=ssh_port, access=access, control_dir=control,
                          ssh_config=seed.ssh_config(scratch / "ssh_config", access, control),
                          forwards=host_ports, pid=vm.pid)
            serial = log_dir / f"{name}-serial.log"

            def alive() -> None:
                if vm.poll() is not None:
                    raise KilnError(f"QEMU exited (code {vm.returncode}) before the VM answered on SSH", log=serial)

            settle(guest, time.monotonic() + (timeout or boot_seconds()), alive, what="the VM", log=serial)
            try:
                yield guest
            finally:
                close_masters(control)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(control, ignore_errors=True)


def control_dir(run_id: str) -> Path:
    """A short private folder for SSH control sockets, named after the run so the janitor can find it if the
    run is killed. Always in /tmp: a socket path may not exceed 108 bytes, and ssh's own (a 40-character hash
    plus a 17-character suffix while it binds) leaves no room for a longer $TMPDIR."""
    return Path(tempfile.mkdtemp(prefix=f"kiln-ssh-{run_id}-" if run_id else "kiln-ssh-", dir="/tmp"))


def close_masters(control: Path) -> None:
    """Ask every SSH control master with a socket in ``control`` to exit.

    Masters (the specs' and Ansible's) persist after their last client; a
    remote machine outlives the bake, so nothing else would end them."""
    for path in sorted(control.glob("*")) if control.is_dir() else ():
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["ssh", "-o", f"ControlPath={path}", "-O", "exit", "kiln-guest"], check=False,
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=10)


POLL_SECONDS = 0.5  # between attempts: an attempt before sshd listens fails at once, and costs the guest nothing
# cloud-init has finished with this boot (its final stage wrote result.json, the mark ``cloud-init status``
# reads), or does not run on it (no ``enabled`` mark from its generator). A shell test costs nothing;
# ``cloud-init status --wait`` would start a Python process that takes seconds under emulation, on the CPUs
# the final stage is using (30.1 s to 28.1 s to answer, docs/boot-profile.md).
CLOUD_INIT_DONE = "[ ! -e /run/cloud-init/enabled ] || [ -e /run/cloud-init/result.json ]"
# One attempt waits in the guest for at most ATTEMPT_SECONDS / 2, and is given ATTEMPT_SECONDS in all: a
# connection that stalls (no reply and no reset: a guest too busy to answer, a lost slirp connection) is
# dropped and made anew instead of holding the whole boot's time.
ATTEMPT_SECONDS = 60.0
SETTLED = (f"i=0; until {CLOUD_INIT_DONE}; do i=$((i+1)); [ $i -le {int(ATTEMPT_SECONDS / 2 / 0.2)} ] || exit 1; "
           "sleep 0.2; done")


def settle(guest: SshGuest, deadline: float, alive: Callable[[], None], *, what: str, log: Path | None = None) -> None:
    """Wait until ``guest`` answers on SSH and cloud-init has finished with it.

    cloud-init restarts sshd in its config stage, seconds after sshd first
    answers: a spec that connects then is reset. Until cloud-init is done, any
    SSH failure (exit 255, the reset among them) is waited out, and no attempt
    lasts longer than ``ATTEMPT_SECONDS``; ``alive`` raises if the machine
    itself is gone."""
    while True:
        alive()
        left = deadline - time.monotonic()
        if left <= 0:
            raise KilnError(f"{what} did not answer on SSH (with cloud-init finished) in time ({BOOT_ENV})", log=log,
                            hint=f"see its serial log; {BOOT_ENV} sets how long a boot may take")
        try:
            done = subprocess.run(guest.ssh_argv("sudo", "sh", "-c", SETTLED), check=False, capture_output=True,
                                  stdin=subprocess.DEVNULL, timeout=max(5.0, min(left, ATTEMPT_SECONDS)))
        except subprocess.TimeoutExpired:
            continue
        if done.returncode == 0:
            return
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def remote(host: str, access: seed.Access, scratch: Path, log_dir: Path, *, forwards: Mapping[str, int] | None = None,
           timeout: float | None = None, name: str = "verify", run_id: str = "") -> Iterator[SshGuest]:
    """A guest that is a remote machine (an EC2 instance): SSH on port 22, ports reached through SSH tunnels.

    Tunnels stand in for QEMU's port forwards, so the same specs test the same
    behaviour from this machine.
    """
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    control = control_dir(run_id)
    tunnels: list[subprocess.Popen[bytes]] = []
    try:
        host_ports = {label: free_port() for label in (forwards or {})}
        guest = SshGuest(ssh_port=22, access=access, forwards=host_ports, host=host, control_dir=control,
                         ssh_config=seed.ssh_config(scratch / "ssh_config", access, control))
        settle(guest, time.monotonic() + (timeout or boot_seconds()), lambda: None, what=host)
        with open(log_dir / f"{name}-tunnels.log", "ab") as out:
            for label, port in (forwards or {}).items():
                argv = [*guest.ssh_argv()[:-1], "-N", "-L", f"127.0.0.1:{host_ports[label]}:127.0.0.1:{port}",
                        guest.ssh_argv()[-1]]
                tunnels.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True))
        yield guest
    finally:
        for tunnel in tunnels:
            tunnel.kill()
            tunnel.wait()
        close_masters(control)
        shutil.rmtree(control, ignore_errors=True)
