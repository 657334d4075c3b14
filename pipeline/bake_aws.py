"""The aws target: the same layers, templates, playbooks and specs, baked into AMIs.

Only the source, the artifact and the publishing differ from the local target:
a root image starts from Debian's official AMI (found by owner and name, and
part of the bake key), a child from its parent's AMI; Packer's amazon-ebs source
builds and copies the AMI; every AMI and snapshot, in every region, carries the
provenance tags; verification launches an instance with a temporary key pair
and security group (tagged with the run id) and always terminates what it made;
``latest`` and promoted channels are published as SSM parameters.

A retry of a bake whose AMI was already registered (a timeout after
registration, a killed job) adopts that AMI — found by its bake key tag — and
goes on with verification instead of failing on the duplicate name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline import __version__, aws, packer, proc, templates, verify
from pipeline import plan as plan_mod
from pipeline.catalog import Artifact
from pipeline.errors import BuildFailed, KilnError
from pipeline.progress import Row, fmt_seconds
from pipeline.settings import AwsSettings

INSTANCE_WAIT = 600.0


@dataclass
class AwsContext:
    """The AWS side of one run: settings, clients, who we are, whether EC2 is an emulator."""

    settings: AwsSettings
    account: aws.Account
    identity: dict[str, str]
    emulated: bool
    _source: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def connect(cls, settings: AwsSettings) -> AwsContext:
        """Check credentials before anything is launched."""
        account = aws.Account(settings)
        return cls(settings=settings, account=account, identity=account.identity(), emulated=aws.emulated())

    def source_ami(self) -> str:
        """Debian's newest matching AMI in the build region, looked up once per run."""
        if self._source is None:
            self._source = self.account.find_source_ami()
        return str(self._source["ImageId"])


def packer_variables(run: Any, layer: Any, ctx: AwsContext, tags: dict[str, str]) -> dict[str, object]:
    """Packer variables of an amazon-ebs build (checked against the templates before use)."""
    from pipeline.bake import common_packer_variables

    s = ctx.settings
    return {
        **common_packer_variables(run, layer),
        "ssh_username": s.ssh_username,
        "ssh_private_key_file": str(layer.scratch / "build-key"),
        "aws_ssh_keypair_name": build_key_name(run, layer),
        "aws_region": s.region,
        "aws_ami_regions": [r for r in s.regions if r != s.region],
        "aws_ami_users": list(s.share_accounts),
        "aws_instance_type": s.instance_type,
        "aws_subnet_filter": dict(s.subnet_filter),
        "aws_vpc_filter": dict(s.vpc_filter),
        "aws_iam_instance_profile": s.iam_instance_profile,
        "aws_kms_key_id": s.kms_key_id,
        "aws_tags": tags,
        "aws_run_tags": {"kiln:run-id": run.run_id, "kiln:name": layer.spec.name, "Name": f"kiln-build-{run.run_id}"},
        "aws_endpoint_ec2": aws.endpoint("ec2") or "",
        "aws_ssh_cidrs": ["127.0.0.1/32"] if ctx.emulated else [],
    }


def build_key_name(run: Any, layer: Any) -> str:
    """The per-build key pair: ``kiln-<run-id>-build-<image>`` (the janitor finds it by name and tag)."""
    return f"kiln-{run.run_id}-build-{layer.spec.name}"


@contextlib.contextmanager
def build_key_pair(run: Any, layer: Any) -> Iterator[None]:
    """Import a fresh key for the build instance; delete the key pair afterwards, whatever happens.

    Kiln's own key (not Packer's temporary one) so the public half is known: the
    specs check it is gone from the image.
    """
    import subprocess

    ec2 = run.aws.account.client("ec2")
    key = layer.scratch / "build-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", build_key_name(run, layer), "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    (layer.log_dir / "build-key.pub").write_text(key.with_suffix(".pub").read_text())
    tags = aws.tag_list({"kiln:run-id": run.run_id, "kiln:name": layer.spec.name})
    ec2.import_key_pair(KeyName=build_key_name(run, layer), PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                        TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags}])
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            ec2.delete_key_pair(KeyName=build_key_name(run, layer))


def layer_tags(run: Any, layer: Any) -> dict[str, str]:
    """Provenance tags of this layer's AMIs and snapshots."""
    parent = layer.parent
    parent_ami = ""
    if parent is not None:
        art = parent.artifact("aws", run.aws.settings.region)
        parent_ami = art.id if art else ""
    else:
        parent_ami = str(layer.source_image)
    return aws.provenance_tags(
        name=layer.spec.name, version=layer.version, parent_ref=layer.parent_label, parent_ami=parent_ami,
        bake_key=layer.inputs.key, git_commit=layer.git.commit, git_dirty=layer.git.dirty, run_id=run.run_id,
        kiln_version=__version__, extra=run.aws.settings.extra_tags)


def adoptable(ctx: AwsContext, name: str, key: str) -> dict[str, str]:
    """AMIs a previous attempt of this very bake registered: {region: ami} in the build region's version."""
    found = ctx.account.images_tagged(ctx.settings.region, {"kiln:name": name, "kiln:bake-key": key})
    found = [i for i in found if i.get("State") in ("available", "pending")]
    if not found:
        return {}
    newest = max(found, key=lambda i: aws.tags_of(i).get("kiln:version", ""))
    version = aws.tags_of(newest)["kiln:version"]
    amis = {}
    for region in ctx.settings.regions:
        same = ctx.account.images_tagged(region, {"kiln:name": name, "kiln:version": version})
        if same:
            amis[region] = same[0]["ImageId"]
    amis["_version"] = version
    return amis


def step_build(run: Any, layer: Any) -> None:
    """Register the AMI: adopt the one a previous attempt made, or build it with Packer."""
    ctx: AwsContext = run.aws
    tags = layer_tags(run, layer)
    if layer.amis:
        run.reporter.line(f"{layer.ref}: adopting the AMI a previous attempt registered: "
                          f"{', '.join(f'{r}:{a}' for r, a in layer.amis.items())}")
        return
    template_dir = run.project.root / "packer" / "image"
    variables = packer_variables(run, layer, ctx, tags)
    templates.check_plan(template_dir, variables)
    var_file = packer.write_var_file(layer.scratch / "build.pkrvars.json", variables)
    log = layer.log_dir / "packer.log"
    with build_key_pair(run, layer), proc.short_tmpdir() as tmp:
        env = {"TMPDIR": str(tmp)}
        if ctx.emulated:
            env["AWS_EC2_METADATA_DISABLED"] = "true"
        inv = packer.build_invocation(template_dir=template_dir, var_file=var_file,
                                      only=packer.SOURCES["aws-emulator" if ctx.emulated else "aws"],
                                      workdir=layer.log_dir, cache=run.paths.cache / "packer", env=env)
        result = proc.run(inv, log, check=False, stream=run.verbose,
                          tick=lambda e: run.reporter.line(f"{layer.ref}: build … {fmt_seconds(e)}"),
                          tick_every=60.0)
    if result.returncode != 0:
        from pipeline.bake import packer_failure

        raise BuildFailed(f"{layer.ref}: packer build failed (exit {result.returncode}): {packer_failure(log)}",
                          log=log)
    output = packer.read_manifest(layer.scratch / "manifest.json")
    layer.amis = aws.parse_artifact_id(output.artifact_id)


def step_register(run: Any, layer: Any) -> None:
    """Every AMI and snapshot in every region carries the tags; sharing is in place; the catalog knows."""
    ctx: AwsContext = run.aws
    tags = layer_tags(run, layer)
    missing = [r for r in ctx.settings.regions if r not in layer.amis]
    if missing:
        raise BuildFailed(f"{layer.ref}: no AMI in {', '.join(missing)}", hint="check the copy to those regions")
    for region, ami in layer.amis.items():
        ec2 = ctx.account.client("ec2", region)
        image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        ctx.account.tag(region, [ami, *aws.snapshots_of(image)], tags)
        if ctx.settings.share_accounts:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={
                "Add": [{"UserId": a} for a in ctx.settings.share_accounts]})
        if ctx.settings.share_org_arns:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={
                "Add": [{"OrganizationArn": a} for a in ctx.settings.share_org_arns]})
        run.catalog.add_artifact(layer.spec.name, layer.version, Artifact(target="aws", id=ami, region=region))


@contextlib.contextmanager
def test_instance(run: Any, layer: Any, ami: str) -> Iterator[dict[str, Any]]:
    """An instance of the new AMI with a temporary key pair and security group; all removed on exit."""
    import subprocess

    ctx: AwsContext = run.aws
    ec2 = ctx.account.client("ec2")
    name = f"kiln-verify-{run.run_id}-{layer.spec.name}"
    run_tags = {"kiln:run-id": run.run_id, "kiln:name": layer.spec.name, "Name": name}
    spec = [{"ResourceType": kind, "Tags": aws.tag_list(run_tags)} for kind in ("key-pair",)]
    key = layer.scratch / "verify-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    created: dict[str, Any] = {}
    try:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=key.with_suffix(".pub").read_bytes(),
                            TagSpecifications=spec)
        created["key"] = name
        sg = ec2.create_security_group(GroupName=name, Description=f"Kiln verification of {layer.ref}",
                                       TagSpecifications=[{"ResourceType": "security-group",
                                                           "Tags": aws.tag_list(run_tags)}])
        created["sg"] = sg["GroupId"]
        cidr = "127.0.0.1/32" if ctx.emulated else caller_cidr()
        ec2.authorize_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": cidr}]}])
        started = ec2.run_instances(
            ImageId=ami, InstanceType=ctx.settings.instance_type, MinCount=1, MaxCount=1, KeyName=name,
            SecurityGroupIds=[sg["GroupId"]],
            TagSpecifications=[{"ResourceType": kind, "Tags": aws.tag_list(run_tags)}
                               for kind in ("instance", "volume")])
        instance = started["Instances"][0]
        created["instance"] = instance["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance["InstanceId"]],
                                                WaiterConfig={"Delay": 2 if ctx.emulated else 10, "MaxAttempts": 60})
        described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
        address = described.get("PublicIpAddress") or described.get("PrivateIpAddress") or ""
        yield {"instance": instance["InstanceId"], "key": key, "sg": sg["GroupId"], "address": address}
    finally:
        with contextlib.suppress(Exception):
            if "instance" in created:
                ec2.terminate_instances(InstanceIds=[created["instance"]])
                ec2.get_waiter("instance_terminated").wait(
                    InstanceIds=[created["instance"]],
                    WaiterConfig={"Delay": 2 if ctx.emulated else 10, "MaxAttempts": 60})
        with contextlib.suppress(Exception):
            if "sg" in created:
                ec2.delete_security_group(GroupId=created["sg"])
        with contextlib.suppress(Exception):
            if "key" in created:
                ec2.delete_key_pair(KeyName=created["key"])


def caller_cidr() -> str:
    """The address AWS sees this machine as (KILN_AWS_SSH_CIDR overrides)."""
    explicit = os.environ.get("KILN_AWS_SSH_CIDR")
    if explicit:
        return explicit
    import urllib.request

    try:
        ip = urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10).read().decode().strip()
    except OSError as exc:
        raise KilnError(f"cannot tell this machine's public address ({exc})",
                        hint="set KILN_AWS_SSH_CIDR, e.g. 10.0.0.0/16 when Jenkins runs inside the VPC") from None
    return f"{ip}/32"


def step_verify(run: Any, layer: Any) -> None:
    """Launch the new AMI, check it, and terminate everything that was created — in every case."""
    ctx: AwsContext = run.aws
    ami = layer.amis[ctx.settings.region]
    with test_instance(run, layer, ami) as inst:
        run.reporter.line(f"{layer.ref}: verify: instance {inst['instance']} running")
        if ctx.emulated:
            # An emulator's instance is not a machine: there is no SSH to check. The SSH half
            # (idempotence and specs) is what the local target's verification proves.
            doc = {"image": layer.spec.name, "version": layer.version, "status": "verified", "target": "aws",
                   "instance": inst["instance"],
                   "specs": {"ok": True, "skipped": "EC2 is an emulator: its instances have no SSH"}}
            layer.report = verify.write_json(layer.log_dir / "report.json", doc)
            run.catalog.record_verification(layer.spec.name, layer.version, spec_digest=layer.spec_digest, ok=True,
                                            report=str(layer.report))
            return
        from pipeline import seed, vm
        from pipeline.bake import check_guest, forwards_of

        access = seed.Access(user=ctx.settings.ssh_username, key=inst["key"], seed_files=())
        with vm.remote(inst["address"], access, layer.scratch / "verify", layer.log_dir,
                       forwards=forwards_of(run, layer)) as guest:
            check_guest(run, layer, guest)


def step_record(run: Any, layer: Any) -> None:
    """Verified; ``latest`` is published to SSM in every region."""
    run.catalog.set_status(layer.spec.name, layer.version, "verified",
                           report=str(layer.report) if layer.report else None)
    aws.publish_channel(run.aws.account, layer.spec.name, "latest",
                        {r: a for r, a in layer.amis.items() if not r.startswith("_")})


STEPS = (("build", step_build), ("register", step_register), ("verify", step_verify), ("record", step_record))


def bake_layer(run: Any, spec: Any, decision: plan_mod.Decision) -> Row:
    """Bake (or adopt and finish) one layer on AWS."""
    from pipeline.bake import Layer

    ctx: AwsContext = run.aws
    if spec.parent is None:
        parent, source, label = None, ctx.source_ami(), f"debian@{ctx.source_ami()}"
    else:
        parent = run.catalog.latest(spec.parent)
        art = parent.artifact("aws", ctx.settings.region) if parent else None
        if parent is None or art is None:
            raise KilnError(f"{spec.name}: no verified {spec.parent} AMI in {ctx.settings.region} to build on",
                            hint=f"run: invoke bake {spec.parent} --target aws")
        source, label = art.id, parent.ref
    found = decision.inputs or run.planner().inputs_for(spec, parent)
    adopt = adoptable(ctx, spec.name, found.key)
    version = adopt.pop("_version", None)
    status = _status(run, spec.name, version) if version else None
    parent_ref = (parent.name, parent.version) if parent else None
    if version is not None and status in ("interrupted", "building"):
        run.catalog.resume(spec.name, version, reason="a retry adopts the AMI its earlier attempt registered")
    elif version is not None and status is None:
        run.catalog.begin_bake(name=spec.name, parent=parent_ref, fingerprint=found.key, git_commit=run.git.commit,
                               git_dirty=run.git.dirty, run_id=run.run_id, log_dir="", inputs=found.to_json(),
                               version=version)
    else:
        version = run.catalog.begin_bake(name=spec.name, parent=parent_ref, fingerprint=found.key,
                                         git_commit=run.git.commit, git_dirty=run.git.dirty, run_id=run.run_id,
                                         log_dir="", inputs=found.to_json())
        adopt = {}
    log_dir = run.log_dir / f"{spec.name}-{version}"
    log_dir.mkdir(parents=True, exist_ok=True)
    verify.write_json(log_dir / "inputs.json", found.to_json())
    run.catalog.set_log_dir(spec.name, version, str(log_dir))
    layer = Layer(spec=spec, version=version, parent=parent, source_image=source, parent_label=label, inputs=found,
                  log_dir=log_dir, scratch=run.paths.runs / f"{run.run_id}-{spec.name}", git=run.git,
                  spec_digest=decision.spec_digest, amis=adopt)
    run.reporter.line(f"{layer.ref}: bake on {label} in {ctx.settings.region} — {'; '.join(decision.reasons)} "
                      f"(key {found.key[7:19]}, logs {log_dir})")
    from pipeline.bake import run_steps

    return run_steps(run, layer, STEPS, "verified")


def _status(run: Any, name: str, version: str) -> str | None:
    return next((r.status for r in run.catalog.versions(name) if r.version == version), None)


def reverify_layer(run: Any, spec: Any, decision: plan_mod.Decision) -> Row:
    """Verify an existing AMI again (its specs changed); a failure marks it failed."""
    from pipeline.bake import Git, Layer, run_steps

    rec = decision.current
    assert rec is not None
    amis = {a.region: a.id for a in rec.artifacts if a.target == "aws" and a.region}
    log_dir = run.log_dir / f"{spec.name}-{rec.version}-reverify"
    log_dir.mkdir(parents=True, exist_ok=True)
    layer = Layer(spec=spec, version=rec.version, parent=None, source_image="", parent_label="", inputs=decision.inputs,
                  log_dir=log_dir, scratch=run.paths.runs / f"{run.run_id}-{spec.name}",
                  git=Git(rec.git_commit, rec.git_dirty), spec_digest=decision.spec_digest, amis=amis)
    run.reporter.line(f"{layer.ref}: re-verify — {'; '.join(decision.reasons)} (logs {log_dir})")
    return run_steps(run, layer, (("verify", step_verify),), "verified")
