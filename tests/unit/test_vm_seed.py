import json
import os
import subprocess
from pathlib import Path

import pytest

from pipeline import vm
from pipeline.errors import KilnError
from pipeline.verify import seed


def qemu_argv(tmp_path: Path, forwards: dict[int, int]) -> list[str]:
    return list(vm.qemu_invocation(disk=tmp_path / "o.qcow2", seed_iso=tmp_path / "s.iso", ssh_port=2200,
                                   forwards=forwards, serial_log=tmp_path / "serial", pidfile=tmp_path / "pid").argv)


def test_qemu_invocation_binds_loopback_and_never_writes_the_image(tmp_path):
    argv = qemu_argv(tmp_path, {8080: 80})
    assert argv[:3] == ["qemu-system-x86_64", "-accel", "tcg"]
    netdev = argv[argv.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:2200-:22" in netdev
    assert "hostfwd=tcp:127.0.0.1:8080-:80" in netdev
    assert "hostfwd=tcp::" not in netdev
    assert f"file={tmp_path / 'o.qcow2'},if=virtio,format=qcow2" in argv


def test_the_test_vm_has_no_default_devices_but_every_one_it_uses(tmp_path):
    argv = qemu_argv(tmp_path, {})
    assert "-nodefaults" in argv and argv[argv.index("-vga") + 1] == "none"
    assert argv[argv.index("-serial") + 1] == f"file:{tmp_path / 'serial'}"
    assert f"file={tmp_path / 's.iso'},media=cdrom,readonly=on" in argv
    assert "virtio-net-pci,netdev=n0" in argv


@pytest.mark.parametrize(("marks", "waits"), [((), False), (("enabled",), True),
                                              (("enabled", "result.json"), False)])
def test_settled_waits_only_while_cloud_init_runs_and_has_not_written_its_result(tmp_path, marks, waits):
    run = tmp_path / "run" / "cloud-init"
    run.mkdir(parents=True)
    for mark in marks:
        (run / mark).touch()
    command = ["sh", "-c", vm.SETTLED.replace("/run/cloud-init", str(run))]
    if waits:
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run(command, timeout=1.5)
    else:
        assert subprocess.run(command, timeout=10).returncode == 0


def test_overlay_has_explicit_backing_format(tmp_path):
    argv = vm.overlay_invocation(Path("/img.qcow2"), tmp_path / "o.qcow2").argv
    assert argv[argv.index("-F") + 1] == "qcow2" and argv[argv.index("-b") + 1] == "/img.qcow2"


def test_free_port_is_usable():
    import socket

    port = vm.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_access_key_and_seed(tmp_path):
    access = seed.make_access(tmp_path / "a", "kiln", "verify-1", "vm")
    assert access.key.exists() and (access.key.stat().st_mode & 0o077) == 0
    user_data = (tmp_path / "a" / "seed" / "user-data").read_text()
    assert user_data.startswith("#cloud-config\n")
    doc = json.loads(user_data.split("\n", 1)[1])
    assert doc["users"][0]["name"] == "kiln"
    assert doc["users"][0]["ssh_authorized_keys"] == [access.public_key]
    assert doc["ssh_pwauth"] is False
    assert "instance-id: verify-1" in (tmp_path / "a" / "seed" / "meta-data").read_text()
    assert [f.name for f in access.seed_files] == ["user-data", "meta-data", "vendor-data"]


def test_iso_invocation_labels_cidata(tmp_path):
    access = seed.Access(user="u", key=tmp_path / "k", seed_files=(tmp_path / "user-data",))
    argv = seed.iso_invocation(access, tmp_path / "s.iso").argv
    assert argv[argv.index("-volid") + 1] == "cidata"


class ScriptedGuest:
    """A guest whose SSH is a shell script: its first ``stalls`` attempts hang (a connection that never replies),
    the next ``resets`` exit 255 (a reset), then it runs the command."""

    def __init__(self, folder: Path, resets: int, stalls: int = 0) -> None:
        self.count = folder / "count"
        self.count.write_text("0")
        self.script = folder / "ssh.sh"
        self.script.write_text(f'n=$(cat {self.count}); echo $((n+1)) > {self.count}\n'
                               f'[ "$n" -lt {stalls} ] && exec sleep 3600\n'
                               f'[ "$n" -lt {stalls + resets} ] && exit 255\nshift; exec "$@"\n')  # "sudo" dropped

    def ssh_argv(self, *command: str) -> list[str]:
        return ["sh", str(self.script), *command]


def test_settle_waits_out_ssh_resets_until_cloud_init_is_done(tmp_path, monkeypatch):
    monkeypatch.setattr(vm.time, "sleep", lambda _s: None)
    guest = ScriptedGuest(tmp_path, resets=3)
    vm.settle(guest, vm.time.monotonic() + 30, lambda: None, what="the VM")  # type: ignore[arg-type]
    assert guest.count.read_text().strip() == "4"


def test_an_attempt_that_stalls_is_dropped_and_made_anew_within_the_boots_time(tmp_path, monkeypatch):
    monkeypatch.setattr(vm, "ATTEMPT_SECONDS", 0.5)  # the floor of one attempt is 5 s
    guest = ScriptedGuest(tmp_path, resets=1, stalls=1)
    started = vm.time.monotonic()
    vm.settle(guest, started + 60, lambda: None, what="the VM")  # type: ignore[arg-type]
    assert guest.count.read_text().strip() == "3" and vm.time.monotonic() - started < 30


def test_the_guest_side_wait_ends_so_that_the_next_attempt_is_a_new_connection(tmp_path):
    run = tmp_path / "run" / "cloud-init"
    run.mkdir(parents=True)
    (run / "enabled").touch()
    bounded = vm.SETTLED.replace("/run/cloud-init", str(run)).replace(f"-le {int(vm.ATTEMPT_SECONDS / 2 / 0.2)}",
                                                                       "-le 2")
    assert bounded != vm.SETTLED.replace("/run/cloud-init", str(run))
    assert subprocess.run(["sh", "-c", bounded], timeout=10).returncode == 1


def test_settle_gives_up_when_the_machine_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(vm.time, "sleep", lambda _s: None)

    def gone() -> None:
        raise KilnError("QEMU exited")

    with pytest.raises(KilnError, match="QEMU exited"):
        vm.settle(ScriptedGuest(tmp_path, resets=99), vm.time.monotonic() + 30, gone, what="the VM")  # type: ignore[arg-type]
    with pytest.raises(KilnError, match="did not answer on SSH"):
        vm.settle(ScriptedGuest(tmp_path, resets=99), vm.time.monotonic() - 1, lambda: None, what="the VM")  # type: ignore[arg-type]


def test_close_masters_asks_each_socket_to_exit(tmp_path, monkeypatch):
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    control = tmp_path / "cp"
    control.mkdir()
    for name in ("a1b2", "c3d4"):
        (control / name).touch()
    vm.close_masters(control)
    vm.close_masters(tmp_path / "gone")
    assert calls.read_text().splitlines() == [f"-o ControlPath={control / name} -O exit kiln-guest"
                                              for name in ("a1b2", "c3d4")]


def test_a_boot_waits_as_long_as_kiln_boot_seconds_says(monkeypatch):
    assert vm.boot_seconds({}) == vm.BOOT_TIMEOUT
    assert vm.boot_seconds({"KILN_BOOT_SECONDS": "90"}) == 90.0
    monkeypatch.setattr(vm.time, "sleep", lambda _s: None)
    with pytest.raises(KilnError, match=r"did not answer on SSH .* in time \(KILN_BOOT_SECONDS\)") as err:
        vm.settle(None, vm.time.monotonic() - 1, lambda: None, what="the VM")  # type: ignore[arg-type]
    assert "KILN_BOOT_SECONDS" in (err.value.hint or "")
