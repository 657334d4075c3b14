"""The EC2 twin: every instance the moto server reports running is a real QEMU VM on this machine.

A test harness, never part of Kiln. It watches the emulated account (over its
API, like any client) and keeps one VM per running instance:

- the VM boots from a copy-on-write overlay of the disk behind the instance's
  AMI: Debian's "official" AMIs seeded in moto are the local foundation; an AMI
  registered from an instance is the disk of that instance's VM, once it has
  powered off;
- it is reachable at exactly the address the emulator reports, port 22
  (``hostfwd=tcp:<private ip>:22-:22``), and only ever on 127.0.0.0/8;
- it gets the instance's key pair as its user's key through a NoCloud seed, as
  EC2's metadata service would give it;
- stopping or terminating the instance stops the VM; a VM that powers itself
  off (Kiln's finaliser) shows as stopped.

Every VM, overlay and seed it made is removed when it stops, whatever happened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import subprocess
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from pipeline import vm
from pipeline.verify import seed

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
RUNNING = ("pending", "running")


class TwinRefused(RuntimeError):
    """The twin will not do this (an address outside 127.0.0.0/8, an AMI it has no disk for)."""


@dataclass
class Machine:
    """The VM behind one instance."""

    instance: str
    region: str
    address: str
    disk: Path
    serial: Path
    process: subprocess.Popen[bytes] | None = None
    ami: str = ""


@dataclass
class Twin:
    """Real VMs behind the emulator's instances, in ``regions``, made in ``work``."""

    endpoint: str
    regions: Sequence[str]
    foundation: Path
    base_amis: Collection[str]
    work: Path
    logs: Path | None = None  # where the serial logs are kept when the twin stops
    user: str = "admin"
    machines: dict[str, Machine] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    booted: list[str] = field(default_factory=list)  # instance ids, in the order their VMs started
    ingress: dict[str, list[str]] = field(default_factory=dict)  # instance → CIDRs allowed to port 22 at boot
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def client(self, region: str) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.endpoint)

    def __enter__(self) -> Twin:
        self.work.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._watch, name="ec2-twin", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        for machine in list(self.machines.values()):
            self.halt(machine, grace=5)
        if self.logs is not None:
            self.logs.mkdir(parents=True, exist_ok=True)
            for iid, text in self.serial_logs():
                (self.logs / f"{iid}-serial.log").write_text(text)
        shutil.rmtree(self.work, ignore_errors=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - kept for the test to report
                self.problems.append(repr(exc))
            self._stop.wait(0.5)

    def reconcile(self) -> None:
        """Make the VMs match what the emulator says about every instance."""
        for region in self.regions:
            ec2 = self.client(region)
            for res in ec2.describe_instances()["Reservations"]:
                for inst in res["Instances"]:
                    self.follow(ec2, region, inst)

    def follow(self, ec2: Any, region: str, inst: dict[str, Any]) -> None:
        """One instance: boot its VM, notice that it powered off, or stop it."""
        iid, state = inst["InstanceId"], inst["State"]["Name"]
        machine = self.machines.get(iid)
        if state in RUNNING and machine is None:
            self.boot(ec2, region, inst)
        elif state in RUNNING and machine is not None and machine.process is not None \
                and machine.process.poll() is not None:
            machine.process = None  # the guest powered itself off: on EC2 the instance is then stopped
            ec2.stop_instances(InstanceIds=[iid])
        elif state not in RUNNING and machine is not None and machine.process is not None:
            # A stopped instance gets a moment to power off; a terminated one is gone at once.
            self.halt(machine, grace=5 if state in ("stopping", "stopped") else 0)

    def boot(self, ec2: Any, region: str, inst: dict[str, Any]) -> None:
        """A VM on an overlay of the AMI's disk, at the instance's private address, with its key pair."""
        iid = inst["InstanceId"]
        address = inst.get("PrivateIpAddress", "")
        if not address or ipaddress.ip_address(address) not in LOOPBACK:
            self.machines[iid] = Machine(iid, region, address, Path("/nonexistent"), Path("/nonexistent"))
            raise TwinRefused(f"{iid}: address {address or '(none)'} is outside 127.0.0.0/8; the twin binds only "
                              "loopback addresses (launch it in a 127.x subnet)")
        self.ingress[iid] = [r["CidrIp"] for g in ec2.describe_security_groups(
            GroupIds=[g["GroupId"] for g in inst.get("SecurityGroups", [])])["SecurityGroups"]
            for perm in g["IpPermissions"] if perm.get("FromPort") == 22 for r in perm.get("IpRanges", [])]
        base = self.disk_of(ec2, region, inst["ImageId"])
        folder = self.work / iid
        folder.mkdir(parents=True)
        machine = Machine(iid, region, address, folder / "disk.qcow2", folder / "serial.log", ami=inst["ImageId"])
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base),
                        str(machine.disk)], check=True, capture_output=True)
        iso = self.seed(ec2, inst, folder)
        argv = ["qemu-system-x86_64", "-accel", vm.accelerator(), "-m", "1024", "-smp", "2", "-nodefaults",
                "-vga", "none", "-display", "none", "-monitor", "none", "-serial", f"file:{machine.serial}",
                "-drive", f"file={machine.disk},if=virtio,format=qcow2",
                "-drive", f"file={iso},media=cdrom,readonly=on",
                "-netdev", f"user,id=n0,hostfwd=tcp:{address}:22-:22", "-device", "virtio-net-pci,netdev=n0"]
        with open(folder / "qemu.log", "ab") as log:
            machine.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)
        self.machines[iid] = machine
        self.booted.append(iid)

    def seed(self, ec2: Any, inst: dict[str, Any], folder: Path) -> Path:
        """A NoCloud seed that gives the instance's key pair to the image's default user."""
        pair = ec2.describe_key_pairs(KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"][0]
        files = folder / "seed"
        files.mkdir()
        (files / "user-data").write_text(seed.user_data(self.user, pair["PublicKey"].strip()))
        (files / "meta-data").write_text(f"instance-id: {inst['InstanceId']}\nlocal-hostname: {inst['InstanceId']}\n")
        (files / "vendor-data").write_text("#cloud-config\n{}\n")
        iso = folder / "seed.iso"
        access = seed.Access(user=self.user, key=folder / "none",
                             seed_files=(files / "user-data", files / "meta-data", files / "vendor-data"))
        subprocess.run(seed.iso_invocation(access, iso).argv, check=True, capture_output=True)
        return iso

    def disk_of(self, ec2: Any, region: str, ami: str) -> Path:
        """The disk behind an AMI: the foundation, or the disk of the (powered off) instance it was made from."""
        if ami in self.base_amis:
            return self.foundation
        for machine in self.machines.values():
            if machine.region != region or not machine.disk.exists():
                continue
            made = ec2.describe_images(Filters=[{"Name": "source-instance-id", "Values": [machine.instance]}])
            if any(image["ImageId"] == ami for image in made["Images"]):
                self.halt(machine, grace=120)  # registered after a stop: the guest has powered off, or is about to
                return machine.disk
        raise TwinRefused(f"{ami}: no disk behind this AMI (not a seeded Debian AMI, nor made from a twin instance)")

    def halt(self, machine: Machine, grace: float = 30) -> None:
        """Stop the VM: give a powering-off guest ``grace`` seconds, then stop QEMU."""
        proc = machine.process
        if proc is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        machine.process = None

    def running(self) -> list[str]:
        """Instances whose VM runs now."""
        return [m.instance for m in self.machines.values() if m.process is not None and m.process.poll() is None]

    def pids(self) -> set[int]:
        """The twin's own processes (its VMs): the fault suite spares them when it counts a bake's leftovers."""
        return {m.process.pid for m in self.machines.values() if m.process is not None and m.process.poll() is None}

    def settled(self, timeout: float = 60) -> list[str]:
        """The VMs still running once the twin has caught up with the emulator (it follows twice a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {i["InstanceId"] for region in self.regions for r in self.client(region).describe_instances()[
                "Reservations"] for i in r["Instances"] if i["State"]["Name"] in RUNNING}
            if set(self.running()) <= live:
                break
            time.sleep(0.5)
        return self.running()

    def serial_logs(self) -> Iterator[tuple[str, str]]:
        """(instance, serial console text) of every VM the twin booted."""
        for iid in self.booted:
            machine = self.machines[iid]
            if machine.serial.exists():
                yield iid, machine.serial.read_text(errors="replace")
